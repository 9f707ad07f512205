import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Backend, InvalidOptionError, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { webBackend } from '@llava-mini/core/web';
import { loadTokenizer } from '@llava-mini/llm/node';
import { inConfigFile, openHfCheckpoint } from './checkpoint.js';
import { checkDtype, type DtypeName, GRAPHS, type GraphName, resolveModelDevice, type Target } from './formats.js';
import { localModel } from './hub/pretrained.js';
import { type NodeInput, resolveNodeInput } from './inputs.js';
import type { ModelParts } from './llava-mini.js';
import { MANIFEST_FILE } from './manifest.js';
import { readManifest, verifyModelFiles } from './model-files.js';
import { manifestSources, type ModelSources, openParts } from './parts.js';
import { planConversion } from './plan.js';
import { buildGraph } from './stages.js';

export type NodeDeviceRequest = 'auto' | 'cpu' | 'cuda' | 'webgpu' | 'wasm';

export interface LoadOptions {
  /** cpu, cuda, webgpu (onnxruntime-node), wasm (onnxruntime-web), or auto (default). */
  device?: NodeDeviceRequest;
  /** A converted folder must have been converted with this dtype; an unconverted one is converted to it in memory. */
  dtype?: DtypeName;
  /** For unconverted checkpoints without their own CLIP copy. */
  clipDir?: string;
  /** Most video frames sampled (default: one per second, uncapped). */
  maxFrames?: number;
  /** Images, and video frames, above this many pixels are refused before decoding (default 1e8). */
  maxPixels?: number;
  /** Most seconds of decoding one image, or of ffprobe or ffmpeg on one video (defaults: 60 s an image, 600 s a video). */
  decodeTimeoutSeconds?: number;
  /**
   * Cap on the bytes of all conversations' KV caches (default 2 GiB). Beyond it, idle
   * conversations are evicted (least recently used first) and recompute on their next turn; if the
   * conversations generating at that moment need more by themselves, the one asking for more gets
   * KvCacheFullError.
   */
  kvCacheBytes?: number;
  /**
   * Bound of the picture cache (default 256 MiB): each image's pre-fusion prefix, by SHA-256 of its
   * pixels, least recently used out, so a new question about a picture already seen skips CLIP,
   * the compressor and the picture's pre-fusion rows. 0 turns it off.
   */
  pictureCacheBytes?: number;
  /** WASM threads for device 'wasm'. */
  numThreads?: number;
  logger?: (message: string) => void;
  onProgress?: ProgressCallback;
}

/** The target a hub model is converted for: the GPU the device names, else the CPU. */
function hubTarget(device: NodeDeviceRequest | undefined): Target {
  return device === 'cuda' || device === 'webgpu' ? device : 'cpu';
}

/** Unconverted checkpoints are converted in memory only below this size (one graph must stay under protobuf's 2 GB). */
export const IN_MEMORY_LIMIT_BYTES = 1.5e9;

/**
 * A model folder found and checked: the target it was made for, and its sources. A manifest's
 * config.json is read when the sources are asked for, after its files and the device are checked,
 * so a folder wrong in several ways reports the same fault first as it always has.
 */
interface Found {
  target: Target;
  sources: () => ModelSources;
}

function fromManifest(dir: string, options: LoadOptions): Found {
  const manifest = readManifest(dir);
  if (options.dtype && manifest.stages.llm.dtype !== checkDtype(options.dtype)) {
    throw new InvalidOptionError(`${dir} was converted with dtype ${manifest.stages.llm.dtype}; convert it again with --dtype ${options.dtype}`);
  }
  verifyModelFiles(dir, manifest, options.onProgress);
  const tokenizer = loadTokenizer(dir);
  return { target: manifest.target, sources: () => manifestSources(manifest, tokenizer, (file) => path.join(dir, file)) };
}

function fromCheckpoint(dir: string, options: LoadOptions): Found {
  const shards = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  const bytes = shards.reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  if (bytes > IN_MEMORY_LIMIT_BYTES) {
    throw new InvalidOptionError(`${dir} holds ${(bytes / 1e9).toFixed(1)} GB of weights, too many to convert in memory: run \`llava-mini convert ${dir} --out DIR\` first`);
  }
  const hf = openHfCheckpoint(dir, options.clipDir);
  try {
    const plan = planConversion(hf.config, hf.weights, { dtype: options.dtype });
    const graphs = new Map<GraphName, Uint8Array>();
    for (const name of GRAPHS) {
      graphs.set(name, buildGraph(name, plan, hf.weights).toBytes());
      options.onProgress?.({ task: 'convert', item: name, done: graphs.size, total: GRAPHS.length, unit: 'files' });
    }
    const sources: ModelSources = { plan, graph: (name) => graphs.get(name) as Uint8Array, tokenizer: loadTokenizer(dir) };
    return { target: plan.target, sources: () => sources };
  } catch (err) {
    throw inConfigFile(err, path.join(dir, 'config.json'));
  } finally {
    hf.weights.close();
  }
}

/**
 * Load every stage from a converted folder (manifest.json), a small unconverted Hugging Face folder,
 * a hub id (`org/name[@revision]`: downloaded, converted once for the dtype and device, cached), or
 * the http(s) URL of a converted folder (downloaded, cached).
 */
export async function loadParts(model: string, options: LoadOptions = {}): Promise<ModelParts<NodeInput>> {
  // One rule for images and videos, checked before anything is fetched (sharp takes whole seconds).
  const timeout = options.decodeTimeoutSeconds;
  if (timeout !== undefined && !(Number.isSafeInteger(timeout) && timeout >= 0)) throw new InvalidOptionError(`decodeTimeoutSeconds must be a whole number >= 0, got ${String(timeout)}`);
  const dir = await localModel(model, { dtype: options.dtype, target: hubTarget(options.device), clipDir: options.clipDir, onProgress: options.onProgress });
  if (!fs.existsSync(dir)) throw new ModelFilesError(dir, 'does not exist');
  const converted = fs.existsSync(path.join(dir, MANIFEST_FILE));
  if (!converted && !fs.existsSync(path.join(dir, 'config.json'))) {
    throw new ModelFilesError(dir, `is neither a converted model (${MANIFEST_FILE}) nor a Hugging Face checkpoint (config.json)`);
  }
  const found = converted ? fromManifest(dir, options) : fromCheckpoint(dir, options);
  const request = options.device ?? 'auto';
  const backend: Backend = request === 'wasm' ? await webBackend({ numThreads: options.numThreads }) : await nodeBackend();
  const device = await resolveModelDevice(backend, found.target, request, dir, options.logger);
  try {
    return await openParts<NodeInput>(found.sources(), {
      backend,
      device,
      logger: options.logger,
      kvCacheBytes: options.kvCacheBytes,
      pictureCacheBytes: options.pictureCacheBytes,
      resolveInput: (input, o) => resolveNodeInput(input, { ...o, maxFrames: options.maxFrames, maxPixels: options.maxPixels, decodeTimeoutSeconds: options.decodeTimeoutSeconds }),
    });
  } catch (err) {
    // The stages' settings come from the manifest's copy of config.json, or the checkpoint's own.
    throw inConfigFile(err, path.join(dir, converted ? MANIFEST_FILE : 'config.json'));
  }
}
