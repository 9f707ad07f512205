import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Backend, type Device, InvalidOptionError, ModelFilesError, type ModelSource, type ProgressCallback } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { webBackend } from '@llava-mini/core/web';
import { Compressor } from '@llava-mini/compressor';
import { readVisionConfig, type RGB8, VisionEncoder } from '@llava-mini/encoder';
import { LlamaModel, readLlamaConfig, type Tokenizer } from '@llava-mini/llm';
import { loadTokenizer } from '@llava-mini/llm/node';
import { Prefusion } from '@llava-mini/prefusion';
import { openHfCheckpoint } from './checkpoint.js';
import { checkDtype, type DtypeName } from './formats.js';
import { resolveNodeInput } from './inputs.js';
import type { ModelParts } from './llava-mini.js';
import { type Manifest, MANIFEST_FILE, parseManifest } from './manifest.js';
import { buildGraph, type ConversionPlan, type GraphName, planConversion } from './stages.js';
import { VisionPipeline } from './vision.js';

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
  /** Images above this many pixels are refused before decoding. */
  maxPixels?: number;
  /** WASM threads for device 'wasm'. */
  numThreads?: number;
  logger?: (message: string) => void;
  onProgress?: ProgressCallback;
}

/** Unconverted checkpoints are converted in memory only below this size (one graph must stay under protobuf's 2 GB). */
export const IN_MEMORY_LIMIT_BYTES = 1.5e9;

function pixelHash(img: RGB8): string {
  return createHash('sha1').update(`${img.width}x${img.height}:`).update(img.data).digest('hex');
}

/** Where a stage's graph comes from: a file of a converted folder, or bytes built in memory. */
type GraphSource = (name: GraphName) => ModelSource;

interface Resolved {
  config: Record<string, unknown>;
  plan: Pick<ConversionPlan, 'formats' | 'contextLength' | 'prefusionPositions' | 'keyGrid' | 'compressor'>;
  graph: GraphSource;
}

function fromManifest(dir: string, options: LoadOptions): Resolved {
  const manifest: Manifest = parseManifest(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8'), path.join(dir, MANIFEST_FILE));
  if (options.dtype && manifest.stages.llm.dtype !== checkDtype(options.dtype)) {
    throw new InvalidOptionError(`${dir} was converted with dtype ${manifest.stages.llm.dtype}; convert it again with --dtype ${options.dtype}`);
  }
  for (const stage of Object.values(manifest.stages)) {
    for (const f of stage.files) if (!fs.existsSync(path.join(dir, f.name))) throw new ModelFilesError(path.join(dir, f.name), 'is listed in the manifest but missing');
  }
  const formats = Object.fromEntries(Object.entries(manifest.stages).map(([k, v]) => [k, v.format])) as ConversionPlan['formats'];
  return {
    config: manifest.config,
    plan: { formats, contextLength: manifest.contextLength, prefusionPositions: manifest.prefusionPositions, keyGrid: manifest.keyGrid, compressor: manifest.compressor },
    graph: (name) => path.join(dir, manifest.stages[name].model),
  };
}

function fromCheckpoint(dir: string, options: LoadOptions): Resolved {
  const shards = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  const bytes = shards.reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  if (bytes > IN_MEMORY_LIMIT_BYTES) {
    throw new InvalidOptionError(`${dir} holds ${(bytes / 1e9).toFixed(1)} GB of weights, too many to convert in memory: run \`llava-mini convert ${dir} --out DIR\` first`);
  }
  const hf = openHfCheckpoint(dir, options.clipDir);
  try {
    const plan = planConversion(hf.config, hf.weights, { dtype: options.dtype });
    const graphs = new Map<GraphName, Uint8Array>();
    for (const name of ['encoder', 'compressor', 'prefusion', 'llm', 'embeddings'] as const) {
      graphs.set(name, buildGraph(name, hf.config, hf.weights, plan).toBytes());
      options.onProgress?.({ task: 'convert', item: name, done: graphs.size, total: 5, unit: 'files' });
    }
    return { config: hf.config, plan, graph: (name) => graphs.get(name) as Uint8Array };
  } finally {
    hf.weights.close();
  }
}

/** Load every stage from a converted folder (manifest.json) or a small unconverted Hugging Face folder. */
export async function loadParts(dir: string, options: LoadOptions = {}): Promise<ModelParts> {
  if (!fs.existsSync(dir)) throw new ModelFilesError(dir, 'does not exist');
  const converted = fs.existsSync(path.join(dir, MANIFEST_FILE));
  if (!converted && !fs.existsSync(path.join(dir, 'config.json'))) {
    throw new ModelFilesError(dir, `is neither a converted model (${MANIFEST_FILE}) nor a Hugging Face checkpoint (config.json)`);
  }
  const { config, plan, graph } = converted ? fromManifest(dir, options) : fromCheckpoint(dir, options);
  const tokenizer: Tokenizer = loadTokenizer(dir);
  const request = options.device ?? 'auto';
  const backend: Backend = request === 'wasm' ? await webBackend({ numThreads: options.numThreads }) : await nodeBackend();
  const device: Device = await backend.resolveDevice(request, options.logger);
  const common = { device, logger: options.logger };
  const dtype = (name: GraphName) => plan.formats[name].dtype;
  const vision = readVisionConfig(config);
  const llamaConfig = readLlamaConfig(config);
  const opened: { dispose(): Promise<void> }[] = [];
  try {
    const encoder = await VisionEncoder.create(backend, graph('encoder'), { ...common, config: vision, dtype: dtype('encoder') });
    opened.push(encoder);
    const compressor = await Compressor.create(backend, graph('compressor'), { ...common, config: plan.compressor, dtype: dtype('compressor'), keyGrid: plan.keyGrid });
    opened.push(compressor);
    const prefusion = await Prefusion.create(backend, graph('prefusion'), { ...common, json: config, dtype: dtype('prefusion'), maxPositions: plan.prefusionPositions });
    opened.push(prefusion);
    const llm = await LlamaModel.create(backend, { model: graph('llm'), embeddings: graph('embeddings') }, { ...common, config: llamaConfig, maxSequence: plan.contextLength, dtype: dtype('llm') });
    opened.push(llm);
    return {
      config,
      tokenizer,
      llm,
      vision: new VisionPipeline(vision, encoder, compressor, prefusion, llm, pixelHash),
      resolveInput: (input, o) => resolveNodeInput(input, { ...o, maxFrames: options.maxFrames, maxPixels: options.maxPixels }),
      dispose: async () => {
        await Promise.all(opened.map((s) => s.dispose()));
      },
    };
  } catch (err) {
    await Promise.all(opened.map((s) => s.dispose()));
    throw err;
  }
}

