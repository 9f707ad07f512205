import { InvalidOptionError } from '@llava-mini/core';

/** PyTorch's cubic-convolution constant for mode='bicubic'. */
const A = -0.75;

const cubicNear = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| <= 1
const cubicFar = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2

/**
 * For each output index of a `from` -> `to` bicubic resize (align_corners=False, no antialias, as
 * PyTorch's upsample_bicubic2d): the four source indices (clamped to the border) and their weights.
 */
export function bicubicTaps(from: number, to: number): { index: number[]; weight: number[] }[] {
  const scale = from / to;
  return Array.from({ length: to }, (_, dst) => {
    // No clamping of the source coordinate at 0: PyTorch clamps it for linear modes only.
    const real = scale * (dst + 0.5) - 0.5;
    const base = Math.floor(real);
    const t = real - base;
    return {
      index: [-1, 0, 1, 2].map((k) => Math.min(Math.max(base + k, 0), from - 1)),
      weight: [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)],
    };
  });
}

/**
 * The key positional table P_k [s*s, D] (spec §2.2 step 1): the query table `posEmbed` [C*C, D]
 * viewed as a CxC image per channel, bicubically resized to s x s and flattened row-major. When
 * s = C it is the table itself; for C = 1 every row equals the single stored vector.
 */
export function keyPositionTable(posEmbed: Float32Array, C: number, D: number, s: number): Float32Array {
  if (posEmbed.length !== C * C * D) throw new InvalidOptionError(`pos_embed has ${posEmbed.length} values, expected C*C*D = ${C * C * D}`);
  if (!Number.isInteger(s) || s < 1) throw new InvalidOptionError(`key grid must be a positive integer, got ${s}`);
  if (s === C) return posEmbed.slice();
  const taps = bicubicTaps(C, s);
  // Separable: resize along columns first (C rows x s columns), then along rows.
  const wide = new Float64Array(C * s * D);
  for (let i = 0; i < C; i++) {
    for (let j = 0; j < s; j++) {
      const { index, weight } = taps[j];
      const out = (i * s + j) * D;
      for (let k = 0; k < 4; k++) {
        const src = (i * C + index[k]) * D;
        for (let d = 0; d < D; d++) wide[out + d] += weight[k] * posEmbed[src + d];
      }
    }
  }
  const table = new Float32Array(s * s * D);
  for (let i = 0; i < s; i++) {
    const { index, weight } = taps[i];
    for (let j = 0; j < s; j++) {
      const out = (i * s + j) * D;
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += weight[k] * wide[(index[k] * s + j) * D + d];
        table[out + d] = acc;
      }
    }
  }
  return table;
}
