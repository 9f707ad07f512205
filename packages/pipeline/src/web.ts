// Browser entry of @llava-mini/pipeline: LlavaMini.fromPretrained(url) on onnxruntime-web (webgpu,
// wasm). Pictures come from URLs, Blobs, ImageData, <img>/<canvas>/ImageBitmap, or a <video>.
import { type ModelSource, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { webBackend } from '@llava-mini/core/web';
import { Tokenizer } from '@llava-mini/llm';
import { resolveBrowserInput, type WebInput } from './browser-input.js';
import { GRAPHS, type GraphName, resolveModelDevice } from './formats.js';
import { LlavaMini as LlavaMiniBase } from './llava-mini.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { manifestSources, openParts } from './parts.js';
import { downloadFile, downloadGraph, type FetchFile } from './web-files.js';

export * from './index.js';
export { resolveBrowserInput, type VideoElementInput, type VideoFramesInput, type WebImageInput, type WebInput } from './browser-input.js';
export { downloadFile, type DownloadOptions, type FetchFile } from './web-files.js';

export interface WebLoadOptions {
  /** webgpu, wasm, or auto (default: webgpu when the browser has an adapter, else wasm). */
  device?: 'auto' | 'webgpu' | 'wasm';
  numThreads?: number;
  /** Where onnxruntime-web's .wasm files are served from, when the bundler does not copy them. */
  wasmPaths?: string;
  maxFrames?: number;
  /** Cap on the bytes of all conversations' KV caches (default 2 GiB; see the Node entry's LoadOptions). */
  kvCacheBytes?: number;
  /** Bound of the picture cache (default 256 MiB; see the Node entry's LoadOptions). */
  pictureCacheBytes?: number;
  logger?: (message: string) => void;
  /** `download` events with the bytes of each model file as it arrives (item: the file name, total: its size). */
  onProgress?: ProgressCallback;
  /** Replaces fetch() for the model's files, e.g. to read them through the Cache API. */
  fetch?: FetchFile;
  /** Stops the download; fromPretrained then rejects with AbortError. */
  signal?: AbortSignal;
}

const decoder = new TextDecoder();

/** LLaVA-Mini in the browser: `LlavaMini.fromPretrained(url)`, inputs typed as WebInput. */
export class LlavaMini extends LlavaMiniBase<WebInput> {
  /**
   * Load a converted model served at `baseUrl` (the folder `llava-mini convert` wrote). Every file
   * the manifest lists is downloaded (reporting its bytes), checked against the manifest's size and
   * sha256, and handed to onnxruntime-web from memory.
   */
  static async fromPretrained(baseUrl: string | URL, options: WebLoadOptions = {}): Promise<LlavaMini> {
    const base = new URL(String(baseUrl).endsWith('/') ? String(baseUrl) : `${baseUrl}/`, globalThis.location?.href);
    const at = (file: string) => new URL(file, base).href;
    const get = options.fetch ?? ((u, init) => fetch(u, init));
    const manifestUrl = at(MANIFEST_FILE);
    const res = await get(manifestUrl, { signal: options.signal }).catch((err: Error) => {
      throw new ModelFilesError(manifestUrl, `cannot be fetched: ${err.message}`, { cause: err });
    });
    if (!res.ok) throw new ModelFilesError(manifestUrl, `cannot be fetched: HTTP ${res.status}`);
    const manifest = parseManifest(await res.text(), manifestUrl);
    const download = { fetch: options.fetch, signal: options.signal, onProgress: options.onProgress };
    const text = async (name: string) => {
      const entry = manifest.tokenizer.find((f) => f.name === name);
      if (!entry) throw new ModelFilesError(manifestUrl, `lists no ${name}`);
      return decoder.decode(await downloadFile(at(name), entry, download));
    };
    const tokenizer = Tokenizer.fromFiles({
      tokenizer: await text('tokenizer.json'),
      tokenizerConfig: await text('tokenizer_config.json'),
      generationConfig: manifest.generationConfig ? JSON.stringify(manifest.generationConfig) : undefined,
    });
    const graphs = new Map<GraphName, ModelSource>();
    for (const name of GRAPHS) graphs.set(name, await downloadGraph(manifest.stages[name].model, manifest.stages[name].files, at, download));
    const backend = await webBackend({ numThreads: options.numThreads, wasmPaths: options.wasmPaths });
    const device = await resolveModelDevice(backend, manifest.target, options.device ?? 'auto', base.href, options.logger);
    const sources = { ...manifestSources(manifest, tokenizer, at), graph: (name: GraphName) => graphs.get(name) as ModelSource };
    const parts = await openParts<WebInput>(sources, {
      backend,
      device,
      logger: options.logger,
      kvCacheBytes: options.kvCacheBytes,
      pictureCacheBytes: options.pictureCacheBytes,
      resolveInput: (input, o) => resolveBrowserInput(input, { ...o, maxFrames: options.maxFrames }),
    });
    return new LlavaMini(parts);
  }
}
