import { InvalidOptionError } from '@llava-mini/core';

/** What the pre-fusion graph needs besides the features: RoPE positions and the additive mask. */
export interface PrefusionInputs {
  /** [T] RoPE position of every row of [image; compressed; text]. */
  positionIds: BigInt64Array;
  /** [T, T] additive attention bias: 0 where row i may see row j, the dtype's lowest value elsewhere. */
  attentionBias: Float32Array;
  /** [T] false for text rows that are padding (ids <= 0: the -200 placeholder and any token 0). */
  valid: boolean[];
}

/** torch.finfo(dtype).min, what transformers fills masked scores with. */
const LOWEST = { float32: -3.4028234663852886e38, float16: -65504 } as const;

/**
 * Positions and mask of spec §3.2 for `imageTokens` image rows, `compressedTokens` compressed rows
 * and the prompt `ids`: padMask = ids <= 0; pos = cumsum(valid) - 1 with pos[!valid] = 1; row i
 * may attend to row j when j <= i and j is valid (causal AND key padding).
 */
export function prefusionInputs(ids: readonly number[], imageTokens: number, compressedTokens: number, dtype: 'float32' | 'float16' = 'float32'): PrefusionInputs {
  for (const [name, n] of [['imageTokens', imageTokens], ['compressedTokens', compressedTokens]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new InvalidOptionError(`${name} must be a positive integer, got ${n}`);
  }
  if (ids.length === 0) throw new InvalidOptionError('the prompt has no tokens');
  if (!ids.every(Number.isInteger)) throw new InvalidOptionError('prompt ids must be integers');
  const valid = [...new Array<boolean>(imageTokens + compressedTokens).fill(true), ...ids.map((id) => id > 0)];
  const T = valid.length;
  const positionIds = new BigInt64Array(T);
  let seen = 0;
  valid.forEach((v, i) => {
    if (v) seen++;
    positionIds[i] = BigInt(v ? seen - 1 : 1);
  });
  const attentionBias = new Float32Array(T * T).fill(LOWEST[dtype]);
  for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) if (valid[j]) attentionBias[i * T + j] = 0;
  return { positionIds, attentionBias, valid };
}
