import { InvalidOptionError } from '@llava-mini/core';

export interface StitchedFeatures {
  /** The N*N sub-image maps as one (g*N) x (g*N) grid, row-major: [(g*N)^2, D]. */
  grid: Float32Array;
  /** The full-image piece (the last one): [g*g, D]. */
  global: Float32Array;
  /** Side of the stitched grid, g * N. */
  side: number;
  dim: number;
}

/**
 * HD stitching (spec §5 step 2): piece k = i*N + j of `features` [N*N + 1, g*g, D] (CLS already
 * dropped) fills rows i*g..i*g+g-1 and columns j*g..j*g+g-1 of a (g*N) x (g*N) grid.
 */
export function stitchFeatures(features: Float32Array, n: number, g: number): StitchedFeatures {
  if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(g) || g < 1) {
    throw new InvalidOptionError(`stitchFeatures needs positive integers N and g, got N=${n}, g=${g}`);
  }
  const pieces = n * n + 1;
  const perPiece = g * g;
  const D = features.length / (pieces * perPiece);
  if (!Number.isInteger(D) || D === 0) {
    throw new InvalidOptionError(`features of length ${features.length} are not [${pieces}, ${perPiece}, D] (N=${n}, g=${g})`);
  }
  const side = g * n;
  const grid = new Float32Array(side * side * D);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const piece = (i * n + j) * perPiece * D;
      for (let r = 0; r < g; r++) {
        const from = piece + r * g * D;
        grid.set(features.subarray(from, from + g * D), ((i * g + r) * side + j * g) * D);
      }
    }
  }
  const global = features.slice(n * n * perPiece * D);
  return { grid, global, side, dim: D };
}
