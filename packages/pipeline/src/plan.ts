import { InvalidOptionError, type WeightSource } from '@llava-mini/core';
import { type CompressorConfig, readCompressorConfig } from '@llava-mini/compressor';
import { DEFAULT_MAX_POSITIONS } from '@llava-mini/prefusion';
import { checkDtype, checkTarget, type DtypeName, type StageName, stageDtypes, type Target } from './formats.js';
import type { ModelConfig } from './model-config.js';

export interface ConversionOptions {
  /** Weight type of every stage (default fp32); the encoder stays float unless named in `stageDtypes`. */
  dtype?: DtypeName;
  stageDtypes?: Partial<Record<StageName, DtypeName>>;
  /** Runtime the graphs are for (default cpu). */
  target?: Target;
  /** LLM context window: KV-cache positions and RoPE rows (default min(max_position_embeddings, 8192)). */
  contextLength?: number;
  /** MatMulNBits block size for q8/q4 (default 32). */
  blockSize?: number;
}

/**
 * What a model's graphs are built and opened with: its config.json read once, and what conversion
 * decided or read from the weights. The one record of these facts: planConversion makes it, the
 * manifest stores it (config.json as written, the rest as fields), and loading reads it back.
 * Each stage's dtype and shapes beyond these are read from its graph when it is opened.
 */
export interface ModelPlan {
  config: ModelConfig;
  /** The compressor's settings: C and D come from its query tensor's shape (config.json has no reliable key for them). */
  compressor: CompressorConfig;
  target: Target;
  dtypes: Record<StageName, DtypeName>;
  /** Context window the LLM graph and KV cache are sized for. */
  contextLength: number;
  /** Rows of the pre-fusion graph's RoPE table (not visible in its inputs, so it is recorded). */
  prefusionPositions: number;
}

/** Decide everything about a conversion before any graph is built. */
export function planConversion(config: ModelConfig, weights: WeightSource, options: ConversionOptions = {}): ModelPlan {
  const target = checkTarget(options.target ?? 'cpu');
  const dtypes = stageDtypes(checkDtype(options.dtype ?? 'fp32'), options.stageDtypes);
  const compressor = readCompressorConfig(config.json, weights);
  const { maxPositionEmbeddings } = config.llama;
  const contextLength = options.contextLength ?? Math.min(maxPositionEmbeddings, 8192);
  if (!Number.isSafeInteger(contextLength) || contextLength < 1 || contextLength > maxPositionEmbeddings) {
    throw new InvalidOptionError(`contextLength must be an integer in 1..${maxPositionEmbeddings} (max_position_embeddings), got ${contextLength}`);
  }
  return { config, compressor, target, dtypes, contextLength, prefusionPositions: DEFAULT_MAX_POSITIONS };
}
