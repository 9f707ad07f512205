import type { Backend, Device, ModelSource } from '@llava-mini/core';
import { Compressor } from '@llava-mini/compressor';
import { VisionEncoder } from '@llava-mini/encoder';
import { LlamaModel, type Tokenizer } from '@llava-mini/llm';
import { Prefusion } from '@llava-mini/prefusion';
import type { GraphName } from './formats.js';
import type { InputResolver, ModelParts } from './llava-mini.js';
import { type Manifest, manifestPlan } from './manifest.js';
import type { ModelPlan } from './plan.js';
import { LlmOpenings } from './llm-openings.js';
import { VisionPipeline } from './vision.js';

/** What it takes to open a model, wherever its files are (a folder, URLs, bytes built in memory). */
export interface ModelSources {
  plan: ModelPlan;
  graph: (name: GraphName) => ModelSource;
  tokenizer: Tokenizer;
}

/** Sources of a converted model, with `locate` turning a file name into a path or URL. */
export function manifestSources(m: Manifest, tokenizer: Tokenizer, locate: (file: string) => string): ModelSources {
  return { plan: manifestPlan(m), graph: (name) => locate(m.stages[name].model), tokenizer };
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

/**
 * Create every stage's session on one device and compose them; on failure nothing stays open. The
 * plan gives each stage its settings; each reads its dtype and shapes from its own graph.
 */
export async function openParts<I>(s: ModelSources, o: OpenOptions<I>): Promise<ModelParts<I>> {
  const common = { device: o.device, logger: o.logger };
  const { config } = s.plan;
  const opened: { dispose(): Promise<void> }[] = [];
  try {
    const encoder = await VisionEncoder.create(o.backend, s.graph('encoder'), { ...common, config: config.vision });
    opened.push(encoder);
    const compressor = await Compressor.create(o.backend, s.graph('compressor'), { ...common, config: s.plan.compressor });
    opened.push(compressor);
    const prefusion = await Prefusion.create(o.backend, s.graph('prefusion'), { ...common, config: config.prefusion, maxPositions: s.plan.prefusionPositions });
    opened.push(prefusion);
    const llm = await LlamaModel.create(
      o.backend,
      { model: s.graph('llm'), embeddings: s.graph('embeddings') },
      { ...common, config: config.llama, maxSequence: s.plan.contextLength, kvCacheBytes: o.kvCacheBytes },
    );
    opened.push(llm);
    // With the picture cache off nothing is memoized across conversations, the openings neither.
    const openings = new LlmOpenings(llm, o.pictureCacheBytes === 0 ? 0 : undefined);
    return {
      config: config.json,
      tokenizer: s.tokenizer,
      llm,
      vision: new VisionPipeline(config.vision, encoder, compressor, prefusion, undefined, o.pictureCacheBytes),
      openings,
      resolveInput: o.resolveInput,
      dispose: async () => {
        openings.dispose();
        await Promise.all(opened.map((x) => x.dispose()));
      },
    };
  } catch (err) {
    await Promise.all(opened.map((x) => x.dispose()));
    throw err;
  }
}
