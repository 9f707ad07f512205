import { AbortError, type ExternalDataFile, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import type { FileEntry } from './manifest.js';
import type { OpfsStore } from './web-store.js';

/** How the browser entry gets a file: `fetch` by default; a page passes its own to read through a cache. */
export type FetchFile = (url: string, init: { signal?: AbortSignal; headers?: Record<string, string>; cache?: RequestCache }) => Promise<Response>;

export interface DownloadOptions {
  fetch?: FetchFile;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** Where large files are kept and resumed (OPFS); the files it holds bypass `fetch`'s cache. */
  store?: OpfsStore;
  logger?: (message: string) => void;
}

function aborted(signal?: AbortSignal): boolean {
  return !!signal?.aborted;
}

const hex = (buf: ArrayBuffer): string => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * One file of a converted model, read in full with `download` progress events of its bytes (the
 * manifest gives the total, so servers without Content-Length still show progress), and held to the
 * manifest's size and sha256: a cut or corrupted download (or cache entry) is an error, never a
 * model that loads and answers wrongly.
 */
export async function downloadFile(url: string, entry: FileEntry, o: DownloadOptions = {}): Promise<Uint8Array> {
  if (o.store?.holds(entry)) return o.store.load(url, entry, o);
  const get = o.fetch ?? ((u, init) => fetch(u, init));
  const res = await get(url, { signal: o.signal }).catch((err: Error) => {
    if (aborted(o.signal)) throw new AbortError(`loading ${entry.name} was aborted`);
    throw new ModelFilesError(url, `cannot be fetched: ${err.message}`, { cause: err });
  });
  if (!res.ok) throw new ModelFilesError(url, `cannot be fetched: HTTP ${res.status}`);
  const out = new Uint8Array(entry.bytes);
  let done = 0;
  const report = () => o.onProgress?.({ task: 'download', item: entry.name, done, total: entry.bytes, unit: 'bytes' });
  report();
  const reader = res.body?.getReader();
  try {
    if (!reader) {
      const all = new Uint8Array(await res.arrayBuffer());
      if (all.length !== entry.bytes) throw new ModelFilesError(url, `has ${all.length} bytes, the manifest says ${entry.bytes}`);
      out.set(all);
      done = all.length;
    } else {
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end) break;
        if (done + value.length > entry.bytes) throw new ModelFilesError(url, `has more than the ${entry.bytes} bytes the manifest says`);
        out.set(value, done);
        done += value.length;
        report();
      }
    }
  } catch (err) {
    if (aborted(o.signal)) throw new AbortError(`loading ${entry.name} was aborted`);
    if (err instanceof ModelFilesError) throw err;
    throw new ModelFilesError(url, `download failed after ${done} of ${entry.bytes} bytes: ${(err as Error).message}`, { cause: err });
  } finally {
    reader?.releaseLock();
  }
  if (done !== entry.bytes) throw new ModelFilesError(url, `ended after ${done} of the ${entry.bytes} bytes the manifest says`);
  const subtle = globalThis.crypto?.subtle;
  if (subtle) {
    const sum = hex(await subtle.digest('SHA-256', out));
    if (sum !== entry.sha256) throw new ModelFilesError(url, `has sha256 ${sum}, the manifest says ${entry.sha256} (a corrupted download or cache entry)`);
  }
  if (!reader) report();
  return out;
}

/** A graph's .onnx bytes with its external-data files, as onnxruntime-web takes them. */
export async function downloadGraph(model: string, files: FileEntry[], at: (file: string) => string, o: DownloadOptions): Promise<{ model: Uint8Array; externalData: ExternalDataFile[] }> {
  let bytes: Uint8Array | undefined;
  const externalData: ExternalDataFile[] = [];
  for (const f of files) {
    const data = await downloadFile(at(f.name), f, o);
    if (f.name === model) bytes = data;
    else externalData.push({ path: f.name, data });
  }
  if (!bytes) throw new ModelFilesError(at(model), 'is not among the files the manifest lists for its stage');
  return { model: bytes, externalData };
}
