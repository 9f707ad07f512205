import { describe, expect, it } from 'vitest';
import { CheckpointMismatchError, f16ArrayToF32, f32ArrayToF16, Graph, linear, readWeight, type Tensor, tensor, type WeightFormat, type WeightSource } from '../src/index.js';
import { backends, maxAbsDiff, seededFloats } from './helpers.js';

const N = 12;
const K = 64;
const W = tensor('float32', [N, K], seededFloats(N * K, 1, 0.2));
const b = tensor('float32', [N], seededFloats(N, 2));
const x = seededFloats(2 * K, 3);

/** x W^T + b, computed directly from the Hugging Face [out, in] layout. */
function expected(): Float32Array {
  const y = new Float32Array(2 * N);
  for (let r = 0; r < 2; r++) for (let n = 0; n < N; n++) {
    let acc = b.data[n];
    for (let k = 0; k < K; k++) acc += x[r * K + k] * W.data[n * K + k];
    y[r * N + n] = acc;
  }
  return y;
}

async function run(format: WeightFormat): Promise<Float32Array[]> {
  const g = new Graph();
  const input = g.input('x', format.dtype, [2, K]);
  g.output(linear(g, input, 'proj', W, b, format), 'y', format.dtype);
  const bytes = g.toBytes();
  const feed: Tensor = format.dtype === 'float32' ? tensor('float32', [2, K], x) : tensor('float16', [2, K], f32ArrayToF16(x));
  const outs: Float32Array[] = [];
  for (const { backend, device } of await backends()) {
    const s = await backend.createSession(bytes, { device });
    const y = (await s.run({ x: feed })).y;
    outs.push(y.dtype === 'float16' ? f16ArrayToF32(y.data as Uint16Array) : (y.data as Float32Array));
    await s.dispose();
  }
  return outs;
}

describe('linear()', () => {
  it('fp32 equals x W^T + b on both backends', async () => {
    for (const y of await run({ dtype: 'float32' })) expect(maxAbsDiff(y, expected())).toBeLessThan(1e-5);
  });
  it('fp16 weights and I/O stay within fp16 rounding', async () => {
    for (const y of await run({ dtype: 'float16' })) expect(maxAbsDiff(y, expected())).toBeLessThan(2e-2);
  });
  it('8-bit and 4-bit MatMulNBits stay within the quantization error bound', async () => {
    // |error| <= sum_k |x_k| * scale/2 with scale <= range/(2^bits - 1); the range of W is 0.4.
    const sumAbsX = Math.max(...[0, 1].map((r) => x.subarray(r * K, (r + 1) * K).reduce((a, v) => a + Math.abs(v), 0)));
    for (const bits of [8, 4] as const) {
      const bound = (sumAbsX * 0.4) / ((1 << bits) - 1) / 2;
      for (const y of await run({ dtype: 'float32', quant: { bits, blockSize: 32 } })) {
        expect(maxAbsDiff(y, expected())).toBeLessThanOrEqual(bound);
      }
      // Symmetric: no zero-point input (MatMulNBits' default 2^(bits-1)); levels span 2 max|W| <= 0.4 in 2^bits - 1 steps, plus one clamped step at 4 bits.
      const symBound = (sumAbsX * 0.4) / ((1 << bits) - 1) / 2 + (bits === 4 ? (sumAbsX * 0.2) / 8 / 2 : 0);
      for (const y of await run({ dtype: 'float32', quant: { bits, blockSize: 32, symmetric: true, accuracyLevel: 4 } })) {
        expect(maxAbsDiff(y, expected())).toBeLessThanOrEqual(symBound);
      }
    }
  });
});

describe('readWeight()', () => {
  const src: WeightSource = { has: (n) => n === 'w', read: () => W };
  it('returns a tensor of the expected shape and names the disagreement otherwise', () => {
    expect(readWeight(src, 'w', [N, K])).toBe(W);
    expect(() => readWeight(src, 'w', [K, N], 'hidden_size=64')).toThrow(CheckpointMismatchError);
    expect(() => readWeight(src, 'w', [K, N], 'hidden_size=64')).toThrow(/has shape \[12, 64\], but hidden_size=64 implies \[64, 12\]/);
    expect(() => readWeight(src, 'missing', [1])).toThrow(/has no tensor 'missing'/);
  });
});
