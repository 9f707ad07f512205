import { hasOutput, type InferenceSession, SessionError } from '@llava-mini/core';
import { LLAMA_IO } from '../io.js';
import { AppendCache } from './append.js';
import { type Decoder, type KvCache, type KvLayout, type KvStrategy } from './cache.js';
import type { KvPool } from './pool.js';
import { RowsStrategy } from './rows.js';
import { SharedCache } from './shared.js';

export { type BatchStats, copyHeadRows, type Decoder, type KvCache, type KvLayout, type KvMode, type KvStrategy, type NewRows } from './cache.js';
export { KvPool } from './pool.js';

/** The KV-cache layout the decoder graph declares (its past_key_values inputs and its outputs) on this runtime, so nothing is assumed. */
export function kvLayout(session: InferenceSession): KvLayout {
  const keys = session.inputs.filter((v) => /^past_key_values\.\d+\.key$/.test(v.name));
  const first = keys[0];
  const [, kvHeads, , headDim] = first?.dims ?? [];
  if (!first || typeof kvHeads !== 'number' || typeof headDim !== 'number' || (first.dtype !== 'float32' && first.dtype !== 'float16')) {
    throw new SessionError(`the decoder graph has no usable ${LLAMA_IO.pastKey(0)} input [batch, kv_heads, capacity, head_dim] of float32/float16`);
  }
  const rows = hasOutput(session, LLAMA_IO.newKey(0));
  const mode = rows ? 'rows' : session.capabilities.kvCacheInPlace ? 'shared' : 'append';
  return { numLayers: keys.length, numKvHeads: kvHeads, headDim, dtype: first.dtype, mode };
}

/** The strategy for the decoder's cache mode. */
export function kvStrategy(decoder: Decoder): KvStrategy {
  switch (decoder.layout.mode) {
    case 'rows':
      return new RowsStrategy(decoder);
    case 'shared':
      return alone((pool) => new SharedCache(decoder, pool));
    case 'append':
      return alone((pool) => new AppendCache(decoder, pool));
  }
}

/** A strategy whose caches share nothing: each decode step runs on its own sequence. */
function alone(open: (pool: KvPool) => KvCache): KvStrategy {
  return { open, sharedBytes: 0, batchStats: undefined };
}
