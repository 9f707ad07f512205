import { InvalidOptionError } from './errors.js';

/**
 * Block-wise weight quantization in the layout of onnxruntime's MatMulNBits. A weight W of a
 * Linear layer, stored as Hugging Face does ([N out features, K in features]), is cut along K into
 * blocks of `blockSize`; each block gets a float scale and an integer zero point, and each value
 * becomes q = clamp(round(w / scale) + zp, 0, 2^bits - 1). Dequantized: (q - zp) * scale, so every
 * value is within scale / 2 of the original (asymmetric min/max quantization with 0 on the grid).
 *
 * `symmetric` fixes every zero point at 2^(bits-1), MatMulNBits' default when it gets no zero-point
 * input, as llama.cpp's Q8_0 / Q4_0 do: 8-bit scale = max|w| / 127; 4-bit scale = -w_m / 8 with w_m
 * the block's value of largest magnitude, which lands on -8 exactly (a value of the opposite sign
 * and the same magnitude is clamped to 7, within |scale| of itself; every other within |scale| / 2).
 * onnxruntime's CPU kernels skip the zero-point work then (about 10-25 % less time per token here).
 */
export interface QuantizedWeight {
  bits: 4 | 8;
  blockSize: number;
  /** Input features. */
  K: number;
  /** Output features. */
  N: number;
  /** uint8 [N, blocksPerRow, blockSize * bits / 8]; 4-bit values packed low nibble first. */
  data: Uint8Array;
  /** [N * blocksPerRow] */
  scales: Float32Array;
  /** 8-bit: [N * blocksPerRow]; 4-bit: [N * ceil(blocksPerRow / 2)], packed low nibble first, each row padded. */
  zeroPoints: Uint8Array;
  /** Every zero point is 2^(bits-1): MatMulNBits needs no zero-point input. */
  symmetric: boolean;
}

export interface QuantizeOptions {
  bits?: 4 | 8;
  /** A power of two, at least 16 (onnxruntime's requirement); 32 by default. */
  blockSize?: number;
  /** Zero points fixed at 2^(bits-1) (see above); default false (min/max per block). */
  symmetric?: boolean;
}

export function blocksPerRow(K: number, blockSize: number): number {
  return Math.ceil(K / blockSize);
}

export function quantizeBlockwise(w: Float32Array, N: number, K: number, options: QuantizeOptions = {}): QuantizedWeight {
  const bits = options.bits ?? 4;
  const blockSize = options.blockSize ?? 32;
  if (bits !== 4 && bits !== 8) throw new InvalidOptionError(`quantization bits must be 4 or 8, got ${bits}`);
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new InvalidOptionError(`quantization block size must be a power of two >= 16, got ${blockSize}`);
  }
  if (w.length !== N * K) throw new InvalidOptionError(`weight has ${w.length} values, expected N*K = ${N}*${K}`);
  const symmetric = options.symmetric ?? false;
  const qmax = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const nb = blocksPerRow(K, blockSize);
  const blob = (blockSize * bits) / 8;
  const zpPerRow = bits === 8 ? nb : Math.ceil(nb / 2);
  const data = new Uint8Array(N * nb * blob);
  const scales = new Float32Array(N * nb);
  const zeroPoints = new Uint8Array(N * zpPerRow);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(K, k0 + blockSize);
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        const v = w[n * K + k];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      let scale: number;
      let zp: number;
      if (symmetric) {
        const extreme = -lo > hi ? lo : hi;
        scale = extreme === 0 ? 1 : bits === 8 ? Math.abs(extreme) / 127 : -extreme / mid;
        zp = mid;
      } else {
        scale = hi > lo ? (hi - lo) / qmax : 1;
        zp = Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
      }
      scales[n * nb + b] = scale;
      if (bits === 8) zeroPoints[n * zpPerRow + b] = zp;
      else zeroPoints[n * zpPerRow + (b >> 1)] |= zp << ((b & 1) * 4);
      const base = (n * nb + b) * blob;
      // Padding past K quantizes 0, which is exactly zp.
      for (let i = 0; i < blockSize; i++) {
        const k = k0 + i;
        const v = k < k1 ? w[n * K + k] : 0;
        const q = Math.min(qmax, Math.max(0, Math.round(v / scale) + zp));
        if (bits === 8) data[base + i] = q;
        else data[base + (i >> 1)] |= q << ((i & 1) * 4);
      }
    }
  }
  return { bits, blockSize, K, N, data, scales, zeroPoints, symmetric };
}

/** The [N, K] float32 weight a quantized weight stands for. */
export function dequantizeBlockwise(q: QuantizedWeight): Float32Array {
  const { bits, blockSize, K, N } = q;
  const nb = blocksPerRow(K, blockSize);
  const blob = (blockSize * bits) / 8;
  const zpPerRow = bits === 8 ? nb : Math.ceil(nb / 2);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / blockSize);
      const i = k % blockSize;
      const base = (n * nb + b) * blob;
      const qv = bits === 8 ? q.data[base + i] : (q.data[base + (i >> 1)] >> ((i & 1) * 4)) & 0xf;
      const zp = bits === 8 ? q.zeroPoints[n * zpPerRow + b] : (q.zeroPoints[n * zpPerRow + (b >> 1)] >> ((b & 1) * 4)) & 0xf;
      out[n * K + k] = (qv - zp) * q.scales[n * nb + b];
    }
  }
  return out;
}
