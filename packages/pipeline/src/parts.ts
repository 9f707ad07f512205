import type { Backend, Device, ModelSource, WeightFormat } from '@llava-mini/core';
import { Compressor } from '@llava-mini/compressor';
import { readVisionConfig, VisionEncoder } from '@llava-mini/encoder';
import { LlamaModel, readLlamaConfig, type Tokenizer } from '@llava-mini/llm';
import { Prefusion } from '@llava-mini/prefusion';
import type { InputResolver, ModelParts } from './llava-mini.js';
import type { Manifest } from './manifest.js';
import type { ConversionPlan } from './stages.js';
import { VisionPipeline } from './vision.js';

/** The graphs the model is made of: the four stages and the LLM's token embeddings. */
export type GraphName = 'encoder' | 'compressor' | 'prefusion' | 'llm' | 'embeddings';
export const GRAPHS: readonly GraphName[] = ['encoder', 'compressor', 'prefusion', 'llm', 'embeddings'];

/** What it takes to open a model, wherever its files are (a folder, URLs, bytes built in memory). */
export interface ModelSources extends Pick<ConversionPlan, 'formats' | 'contextLength' | 'prefusionPositions' | 'keyGrid' | 'compressor'> {
  config: Record<string, unknown>;
  graph: (name: GraphName) => ModelSource;
  tokenizer: Tokenizer;
}

/** Sources of a converted model, with `locate` turning a file name into a path or URL. */
export function manifestSources(m: Manifest, tokenizer: Tokenizer, locate: (file: string) => string): ModelSources {
  const formats = Object.fromEntries(GRAPHS.map((g) => [g, m.stages[g].format])) as Record<GraphName, WeightFormat>;
  return {
    config: m.config,
    formats,
    contextLength: m.contextLength,
    prefusionPositions: m.prefusionPositions,
    keyGrid: m.keyGrid,
    compressor: m.compressor,
    graph: (name) => locate(m.stages[name].model),
    tokenizer,
  };
}

export interface OpenOptions<I> {
  backend: Backend;
  device: Device;
  resolveInput: InputResolver<I>;
  /** Cap on the bytes of all conversations' KV caches (LlamaModelOptions.kvCacheBytes). */
  kvCacheBytes?: number;
  /** Bound of the picture cache (VisionPipeline.pictures). */
  pictureCacheBytes?: number;
  logger?: (message: string) => void;
}

/** Create every stage's session on one device and compose them; on failure nothing stays open. */
export async function openParts<I>(s: ModelSources, o: OpenOptions<I>): Promise<ModelParts<I>> {
  const common = { device: o.device, logger: o.logger };
  const dtype = (name: GraphName) => s.formats[name].dtype;
  const vision = readVisionConfig(s.config);
  const opened: { dispose(): Promise<void> }[] = [];
  try {
    const encoder = await VisionEncoder.create(o.backend, s.graph('encoder'), { ...common, config: vision, dtype: dtype('encoder') });
    opened.push(encoder);
    const compressor = await Compressor.create(o.backend, s.graph('compressor'), { ...common, config: s.compressor, dtype: dtype('compressor'), keyGrid: s.keyGrid });
    opened.push(compressor);
    const prefusion = await Prefusion.create(o.backend, s.graph('prefusion'), { ...common, json: s.config, dtype: dtype('prefusion'), maxPositions: s.prefusionPositions });
    opened.push(prefusion);
    const llm = await LlamaModel.create(
      o.backend,
      { model: s.graph('llm'), embeddings: s.graph('embeddings') },
      { ...common, config: readLlamaConfig(s.config), maxSequence: s.contextLength, kvCacheBytes: o.kvCacheBytes },
    );
    opened.push(llm);
    return {
      config: s.config,
      tokenizer: s.tokenizer,
      llm,
      vision: new VisionPipeline(vision, encoder, compressor, prefusion, undefined, o.pictureCacheBytes),
      resolveInput: o.resolveInput,
      dispose: async () => {
        await Promise.all(opened.map((x) => x.dispose()));
      },
    };
  } catch (err) {
    await Promise.all(opened.map((x) => x.dispose()));
    throw err;
  }
}
