// Browser entry of @llava-mini/pipeline: LlavaMini.fromPretrained(url) on onnxruntime-web (webgpu,
// wasm). Pictures come from URLs, Blobs, ImageData, <img>/<canvas>/ImageBitmap, or a <video>.
import { ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { webBackend } from '@llava-mini/core/web';
import { Tokenizer } from '@llava-mini/llm';
import { resolveBrowserInput, type WebInput } from './browser-input.js';
import { LlavaMini as LlavaMiniBase } from './llava-mini.js';
import { MANIFEST_FILE, parseManifest } from './manifest.js';
import { manifestSources, openParts } from './parts.js';

export * from './index.js';
export { resolveBrowserInput, type VideoElementInput, type WebImageInput, type WebInput } from './browser-input.js';

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
  onProgress?: ProgressCallback;
}

async function fetchText(url: string, optional = false): Promise<string | undefined> {
  const res = await fetch(url).catch((err) => {
    throw new ModelFilesError(url, `cannot be fetched: ${(err as Error).message}`, { cause: err });
  });
  if (res.ok) return res.text();
  if (optional && res.status === 404) return undefined;
  throw new ModelFilesError(url, `cannot be fetched: HTTP ${res.status}`);
}

/** LLaVA-Mini in the browser: `LlavaMini.fromPretrained(url)`, inputs typed as WebInput. */
export class LlavaMini extends LlavaMiniBase<WebInput> {
  /** Load a converted model served at `baseUrl` (the folder `llava-mini convert` wrote). */
  static async fromPretrained(baseUrl: string | URL, options: WebLoadOptions = {}): Promise<LlavaMini> {
    const base = new URL(String(baseUrl).endsWith('/') ? String(baseUrl) : `${baseUrl}/`, globalThis.location?.href);
    const at = (file: string) => new URL(file, base).href;
    const manifest = parseManifest((await fetchText(at(MANIFEST_FILE))) as string, at(MANIFEST_FILE));
    const tokenizer = Tokenizer.fromFiles({
      tokenizer: (await fetchText(at('tokenizer.json'))) as string,
      tokenizerConfig: (await fetchText(at('tokenizer_config.json'))) as string,
      generationConfig: await fetchText(at('generation_config.json'), true),
    });
    const backend = await webBackend({ numThreads: options.numThreads, wasmPaths: options.wasmPaths });
    const device = await backend.resolveDevice(options.device ?? 'auto', options.logger);
    const parts = await openParts<WebInput>(manifestSources(manifest, tokenizer, at), {
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
