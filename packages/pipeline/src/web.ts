// Browser entry of @llava-mini/pipeline: LlavaMini.fromPretrained(url) on onnxruntime-web (webgpu,
// wasm). Pictures come from URLs, Blobs, ImageData, <img>/<canvas>/ImageBitmap, or a <video>.
import { DeviceUnavailableError, type ModelSource, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { webBackend, webgpuGraphCheck } from '@llava-mini/core/web';
import { provideGrammarEngine, Tokenizer } from '@llava-mini/llm';
import { resolveBrowserInput, type WebInput } from './browser-input.js';
import { GRAPHS, type GraphName, resolveModelDevice } from './formats.js';
import { formatHubId, type HubId, matchHubId } from './hub/id.js';
import { LlavaMini as LlavaMiniBase, type ModelParts } from './llava-mini.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { manifestSources, openParts } from './parts.js';
import { downloadFile, downloadGraph, type FetchFile } from './web-files.js';
import { cachedFetch, HUB_ENDPOINT, resolveHubFolder } from './web-hub.js';
import { OpfsStore, type StoreOptions } from './web-store.js';

export * from './index.js';
export { resolveBrowserInput, type VideoElementInput, type VideoFramesInput, type WebImageInput, type WebInput } from './browser-input.js';
export { mediaStreamFrames, type MediaStreamFramesOptions } from './web-live.js';
export { downloadFile, type DownloadOptions, type FetchFile } from './web-files.js';
export { cachedFetch, hubFolderUrl, HUB_ENDPOINT, MODEL_CACHE } from './web-hub.js';
export { STORE_DIR, type StoreOptions } from './web-store.js';

export interface WebLoadOptions {
  /** webgpu, wasm, or auto (default: webgpu when the browser has an adapter, else wasm). */
  device?: 'auto' | 'webgpu' | 'wasm';
  numThreads?: number;
  /** Where onnxruntime-web's .wasm files are served from, when the bundler does not copy them. */
  wasmPaths?: string;
  maxFrames?: number;
  /** Most pixels of an image or a video frame (default 100,000,000, as in Node): checked from an image's header before it is decoded, from a drawable's size before it is drawn. */
  maxPixels?: number;
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
  /** For a hub id: the hub or a mirror (default https://huggingface.co). */
  hubEndpoint?: string;
  /**
   * Large files (the weights' chunks) are kept in the origin private file system as they arrive,
   * so a reload, or a load after a cut connection, asks only for the bytes not yet stored; pass
   * false to hold them in memory only.
   */
  storage?: false | StoreOptions;
}

const decoder = new TextDecoder();

// Structured output's engine, loaded with the first answer that has a response format.
provideGrammarEngine(() => import('./grammar-engine.js'));

/** LLaVA-Mini in the browser: `LlavaMini.fromPretrained(url or hub id)`, inputs typed as WebInput. */
export class LlavaMini extends LlavaMiniBase<WebInput> {
  /**
   * Load a converted model served at `baseUrl` (the folder `llava-mini convert` wrote), or a hub id
   * `org/name[@revision]` of a repository holding such a folder (kept in the Cache API; a relative
   * folder URL is then written with './' or a trailing '/'). Every file the manifest lists is
   * downloaded (reporting its bytes), checked against the manifest's size and sha256, and handed
   * to onnxruntime-web from memory.
   */
  static async fromPretrained(model: string | URL, options: WebLoadOptions = {}): Promise<LlavaMini> {
    const hub = typeof model === 'string' ? matchHubId(model) : undefined;
    if (hub) return new LlavaMini(await openHubModel(hub, options));
    const base = new URL(String(model).endsWith('/') ? String(model) : `${model}/`, globalThis.location?.href);
    const manifestUrl = new URL(MANIFEST_FILE, base).href;
    const get = options.fetch ?? ((u, init) => fetch(u, init));
    const res = await get(manifestUrl, { signal: options.signal }).catch((err: Error) => {
      throw new ModelFilesError(manifestUrl, `cannot be fetched: ${err.message}`, { cause: err });
    });
    return new LlavaMini(await openFolder(base, res, options, options.fetch));
  }
}

/**
 * A hub id's folder: the manifest from the hub, the files through the Cache API (or `options.fetch`).
 * A stored file that fails its check (a damaged entry) is dropped and fetched again, once.
 */
async function openHubModel(id: HubId, options: WebLoadOptions): Promise<ModelParts<WebInput>> {
  const endpoint = options.hubEndpoint ?? HUB_ENDPOINT;
  const { base, manifest } = await resolveHubFolder(id, endpoint, MANIFEST_FILE).catch((err: Error) => {
    throw new ModelFilesError(`${formatHubId(id)} (${endpoint})`, `cannot be fetched: ${err.message}`, { cause: err });
  });
  const text = await manifest.text();
  const cache = options.fetch ? undefined : cachedFetch();
  const open = () => openFolder(base, new Response(text, { status: manifest.status }), options, options.fetch ?? cache);
  try {
    return await open();
  } catch (err) {
    if (!(err instanceof ModelFilesError) || !cache) throw err;
    await cache.forget(err.path);
    return open();
  }
}

/** Everything after the manifest's response: the tokenizer, the graphs, the backend and device, the parts. */
async function openFolder(base: URL, res: Response, options: WebLoadOptions, get: FetchFile | undefined): Promise<ModelParts<WebInput>> {
  const at = (file: string) => new URL(file, base).href;
  const manifestUrl = at(MANIFEST_FILE);
  if (!res.ok) throw new ModelFilesError(manifestUrl, `cannot be fetched: HTTP ${res.status}`);
  const manifest = parseManifest(await res.text(), manifestUrl);
  const store = options.storage === false ? undefined : await OpfsStore.open(options.fetch ?? ((u, init) => fetch(u, init)), options.storage);
  const download = { fetch: get, signal: options.signal, onProgress: options.onProgress, store, logger: options.logger };
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
  // The device is settled before the weights are downloaded: a refusal costs the manifest, not gigabytes.
  const backend = await webBackend({ numThreads: options.numThreads, wasmPaths: options.wasmPaths });
  const device = await resolveModelDevice(backend, manifest.target, options.device ?? 'auto', base.href, options.logger);
  // A GPU target's graphs are float16 throughout; the session would refuse them on this adapter later.
  const f16 = device === 'webgpu' && manifest.target !== 'cpu' ? await webgpuGraphCheck(true) : undefined;
  if (f16) throw new DeviceUnavailableError('webgpu', f16.reason, f16.hint);
  const graphs = new Map<GraphName, ModelSource>();
  for (const name of GRAPHS) graphs.set(name, await downloadGraph(manifest.stages[name].model, manifest.stages[name].files, at, download));
  const sources = { ...manifestSources(manifest, tokenizer, at), graph: (name: GraphName) => graphs.get(name) as ModelSource };
  return openParts<WebInput>(sources, {
    backend,
    device,
    logger: options.logger,
    kvCacheBytes: options.kvCacheBytes,
    pictureCacheBytes: options.pictureCacheBytes,
    resolveInput: (input, o) => resolveBrowserInput(input, { ...o, maxFrames: options.maxFrames, maxPixels: options.maxPixels }),
  });
}
