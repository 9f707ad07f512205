import { CheckpointMismatchError, UnsupportedConfigError, type WeightSource } from '@llava-mini/core';

/** The query compressor's hyper-parameters (spec §2). */
export interface CompressorConfig {
  /** C: queries per side; the compressor has C*C queries. */
  size: number;
  /** C*C */
  queries: number;
  /** D: CLIP width the compressor works in (before the projector). */
  hidden: number;
  heads: number;
  /** nn.LayerNorm's default, used by ln_q and ln_kv. */
  layerNormEps: number;
}

export const QUERY = 'model.compressor.query';

/** The release hard-codes 8 heads (`Resampler(..., num_heads=8)`); our tiny checkpoints say so in config.json. */
const DEFAULT_HEADS = 8;

/**
 * Read the compressor config from config.json and the checkpoint: C and D come from the stored
 * query [C*C, D] (the release has no reliable key for them), cross-checked against
 * `compressor_size` and `mm_hidden_size` when present.
 */
export function readCompressorConfig(json: Record<string, unknown>, src: WeightSource): CompressorConfig {
  if (!src.has(QUERY)) throw new CheckpointMismatchError(`checkpoint has no tensor '${QUERY}' (the compressor's learnable queries)`);
  const dims = src.read(QUERY).dims;
  if (dims.length !== 2) throw new CheckpointMismatchError(`'${QUERY}' must be 2-D [C*C, D], got [${dims.join(', ')}]`);
  const [queries, hidden] = dims;
  const size = Math.round(Math.sqrt(queries));
  if (size * size !== queries || size < 1) {
    throw new CheckpointMismatchError(`'${QUERY}' has ${queries} rows, which is not a square number C*C`);
  }
  if (json.compressor_size !== undefined && json.compressor_size !== size) {
    throw new CheckpointMismatchError(
      `config compressor_size=${JSON.stringify(json.compressor_size)} but '${QUERY}' has ${queries} rows (C=${size})`,
    );
  }
  if (json.mm_hidden_size !== undefined && json.mm_hidden_size !== hidden) {
    throw new CheckpointMismatchError(`config mm_hidden_size=${JSON.stringify(json.mm_hidden_size)} but '${QUERY}' has width ${hidden}`);
  }
  const heads = json.compressor_num_heads ?? DEFAULT_HEADS;
  if (typeof heads !== 'number' || !Number.isInteger(heads) || heads <= 0) {
    throw new UnsupportedConfigError('compressor_num_heads', `expected a positive integer, got ${JSON.stringify(heads)}`);
  }
  if (hidden % heads !== 0) {
    throw new UnsupportedConfigError('compressor_num_heads', `${heads} heads do not divide the compressor width ${hidden}`);
  }
  return { size, queries, hidden, heads, layerNormEps: 1e-5 };
}
