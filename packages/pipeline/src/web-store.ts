// Large model files in the origin private file system (OPFS). The Cache API keeps a response only
// once its whole body has arrived (cache.put reads it to the end), so a reload or a dropped
// connection during a 512 MiB chunk starts that chunk over; here a file is written as it arrives,
// in segments that each become durable when closed, and a later load asks the server for the rest
// with a Range request. Files are kept under their manifest sha256 (content-addressed: a new
// commit's unchanged chunks are not fetched again, a changed one has another name) and are checked
// against it every time they are read back.
import { AbortError, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import type { FileEntry } from './manifest.js';
import type { FetchFile } from './web-files.js';

/** The OPFS folder model files are kept in. */
export const STORE_DIR = 'llava-mini-models';
const MIB = 1024 * 1024;

export interface StoreOptions {
  /** Files at least this large go to OPFS (default 16 MiB); smaller ones take the ordinary path. */
  minBytes?: number;
  /** Bytes per stored segment (default 16 MiB): what a cut download loses at most. */
  segmentBytes?: number;
}

interface LoadOptions {
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** Hears why storing stopped (a full quota): the load goes on from memory. */
  logger?: (message: string) => void;
}

export const sha256Hex = async (data: Uint8Array): Promise<string> =>
  Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>)), (b) => b.toString(16).padStart(2, '0')).join('');

const segmentName = (i: number) => String(i).padStart(6, '0');

export class OpfsStore {
  /** Set once a write fails (a full quota): later files are held in memory only. */
  private failed: string | undefined;

  private constructor(
    private readonly root: FileSystemDirectoryHandle,
    private readonly get: FetchFile,
    private readonly minBytes: number,
    private readonly segmentBytes: number,
  ) {}

  /** The store, or undefined where the browser has no OPFS (an insecure origin, some private modes). */
  static async open(get: FetchFile, o: StoreOptions = {}): Promise<OpfsStore | undefined> {
    const storage = globalThis.navigator?.storage;
    if (typeof storage?.getDirectory !== 'function') return undefined;
    try {
      const root = await (await storage.getDirectory()).getDirectoryHandle(STORE_DIR, { create: true });
      return new OpfsStore(root, get, o.minBytes ?? 16 * MIB, o.segmentBytes ?? 16 * MIB);
    } catch {
      return undefined;
    }
  }

  holds(entry: FileEntry): boolean {
    return !this.failed && entry.bytes >= this.minBytes;
  }

  /**
   * The file's bytes: what is stored, then the rest from `url` (Range), checked against the
   * manifest's sha256. Stored bytes that fail the check are dropped and fetched again, once.
   */
  async load(url: string, entry: FileEntry, o: LoadOptions = {}): Promise<Uint8Array> {
    const out = new Uint8Array(entry.bytes);
    for (let attempt = 0; ; attempt++) {
      const dir = await this.root.getDirectoryHandle(entry.sha256, { create: true });
      const stored = await this.readStored(dir, out);
      const done = stored < entry.bytes ? await this.download(url, entry, dir, out, stored, o) : stored;
      o.onProgress?.({ task: 'download', item: entry.name, done, total: entry.bytes, unit: 'bytes' });
      const sum = await sha256Hex(out);
      if (sum === entry.sha256) return out;
      await this.root.removeEntry(entry.sha256, { recursive: true });
      // Freshly downloaded bytes that fail are the server's (or the network's) fault: say so.
      if (stored < entry.bytes || attempt > 0) throw new ModelFilesError(url, `has sha256 ${sum}, the manifest says ${entry.sha256} (a corrupted download)`);
    }
  }

  /** Read the whole segments stored from the start into `out`; returns how many bytes they hold. */
  private async readStored(dir: FileSystemDirectoryHandle, out: Uint8Array): Promise<number> {
    let at = 0;
    for (let i = 0; at < out.length; i++) {
      const handle = await dir.getFileHandle(segmentName(i)).catch(() => undefined);
      if (!handle) break;
      const file = await handle.getFile();
      if (file.size !== Math.min(this.segmentBytes, out.length - at)) {
        // Written with another segment size, or damaged: from here on it is fetched again.
        await dir.removeEntry(segmentName(i));
        break;
      }
      out.set(new Uint8Array(await file.arrayBuffer()), at);
      at += file.size;
    }
    return at;
  }

  /** Fetch bytes `from`.. into `out`, storing each segment as it fills; returns the bytes now held. */
  private async download(url: string, entry: FileEntry, dir: FileSystemDirectoryHandle, out: Uint8Array, from: number, o: LoadOptions): Promise<number> {
    // no-store: the bytes are kept here, and a second copy in the HTTP cache would double the disk a model takes.
    const res = await this.get(url, { signal: o.signal, cache: 'no-store', headers: from > 0 ? { Range: `bytes=${from}-` } : undefined }).catch((err: Error) => {
      if (o.signal?.aborted) throw new AbortError(`loading ${entry.name} was aborted`);
      throw new ModelFilesError(url, `cannot be fetched: ${err.message}`, { cause: err });
    });
    if (!res.ok) throw new ModelFilesError(url, `cannot be fetched: HTTP ${res.status}`);
    // A server that ignores Range sends the whole file (200): it is taken from the start.
    let at = res.status === 206 ? from : 0;
    if (res.status === 206 && Number(/^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]) !== from) {
      throw new ModelFilesError(url, `answered a request for bytes ${from}- with Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
    }
    let flushed = at;
    const flush = async () => {
      while (!this.failed && flushed < at && (at - flushed >= this.segmentBytes || at === out.length)) {
        const end = Math.min(flushed + this.segmentBytes, out.length);
        try {
          const w = await (await dir.getFileHandle(segmentName(flushed / this.segmentBytes), { create: true })).createWritable();
          await w.write(out.subarray(flushed, end) as Uint8Array<ArrayBuffer>);
          await w.close();
        } catch (err) {
          // Storing is what lets a reload skip the download, not what makes this load work: go on.
          this.failed = (err as Error).message;
          o.logger?.(`[llava-mini] ${entry.name} and the files after it are not stored (${this.failed}); this load goes on from memory, a reload downloads them again`);
          break;
        }
        flushed = end;
      }
    };
    const report = () => o.onProgress?.({ task: 'download', item: entry.name, done: at, total: entry.bytes, unit: 'bytes' });
    report();
    const reader = res.body?.getReader();
    if (!reader) throw new ModelFilesError(url, 'has no body to read');
    try {
      for (;;) {
        const { done: end, value } = await reader.read();
        if (end) break;
        if (at + value.length > out.length) throw new ModelFilesError(url, `has more than the ${entry.bytes} bytes the manifest says`);
        out.set(value, at);
        at += value.length;
        report();
        await flush();
      }
    } catch (err) {
      if (o.signal?.aborted) throw new AbortError(`loading ${entry.name} was aborted`);
      if (err instanceof ModelFilesError) throw err;
      const kept = `${flushed} bytes are stored and a new load resumes from there`;
      throw new ModelFilesError(url, `download failed after ${at} of ${entry.bytes} bytes (${kept}): ${(err as Error).message}`, { cause: err });
    } finally {
      reader.releaseLock();
    }
    if (at !== out.length) throw new ModelFilesError(url, `ended after ${at} of the ${entry.bytes} bytes the manifest says (${flushed} are stored; a new load resumes there)`);
    return at;
  }
}
