import { describe, expect, it } from 'vitest';
import { attendHead, cachedFloat32, erf, floats, gelu, layerNorm, linear, refInvFreq, refLlamaConfig, rmsNorm, rotate } from '../src/index.js';

// The reference is what every graph is checked against, so its own building blocks are checked
// here against values known independently (tables, closed forms, hand computations).
describe('reference math', () => {
  it('erf matches tabulated values to 1e-12', () => {
    const table: [number, number][] = [
      [0, 0],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [3.5, 0.9999992569016276],
      [-1.5, -0.9661051464753108],
    ];
    for (const [x, v] of table) expect(Math.abs(erf(x) - v)).toBeLessThan(1e-12);
    expect(gelu(1)).toBeCloseTo(0.8413447460685429, 12);
  });

  it('linear, layerNorm and rmsNorm on a hand-sized example', () => {
    // W = [[1, 2], [3, 4], [5, 6]] (out 3, in 2), b = [1, 0, -1], x = [1, -1]
    expect(Array.from(linear(Float32Array.of(1, -1), Float32Array.of(1, 2, 3, 4, 5, 6), Float32Array.of(1, 0, -1), 2, 3))).toEqual([0, -1, -2]);
    const ln = layerNorm(Float32Array.of(1, 3), Float32Array.of(2, 2), Float32Array.of(0, 1), 2, 0);
    expect(Array.from(ln)).toEqual([-2, 3]);
    const rms = rmsNorm(Float32Array.of(3, 4), Float32Array.of(1, 1), 2, 0);
    expect(rms[0]).toBeCloseTo(3 / Math.sqrt(12.5), 6);
  });

  it('attention respects the mask and averages values by softmax weight', () => {
    const q = [Float64Array.of(1, 0), Float64Array.of(0, 1)];
    const k = [Float64Array.of(1, 0), Float64Array.of(0, 1)];
    const v = [Float64Array.of(10, 0), Float64Array.of(0, 10)];
    const causal = attendHead(q, k, v, 1, (i, j) => j <= i);
    expect(Array.from(causal[0])).toEqual([10, 0]); // row 0 sees only key 0
    const w = Math.exp(1) / (Math.exp(1) + 1);
    expect(causal[1][1]).toBeCloseTo(10 * w, 12);
    expect(Array.from(attendHead(q, k, v, 1, () => false)[0])).toEqual([0, 0]);
  });

  it('RoPE: llama3 scaling keeps high frequencies, divides low ones by the factor, and rotates pairs (i, i + d/2)', () => {
    const base = { num_attention_heads: 1, hidden_size: 128, head_dim: 128, rope_theta: 500000 };
    const plain = refInvFreq(refLlamaConfig({ ...base }));
    const scaled = refInvFreq(refLlamaConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }));
    expect(scaled[0]).toBe(plain[0]); // wavelength 2*pi < 2048: unchanged
    expect(scaled[63]).toBeCloseTo(plain[63] / 8, 15); // wavelength > 8192: divided by 8
    const x = new Float64Array(4);
    x[0] = 1;
    const r = rotate(x, 1, [Math.PI / 2, 0]);
    expect(r[0]).toBeCloseTo(0, 12);
    expect(r[2]).toBeCloseTo(1, 12); // dim 0 turns into its partner, dim 0 + d/2
  });

  it('reads float16 and bfloat16 weights from their bits, and float32 as stored', () => {
    // Half: 1, -2, the largest finite (65504), the smallest subnormal (2^-24), infinity; bfloat16: 1, 3.140625.
    const half = { dtype: 'float16', dims: [5], data: Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00) };
    expect(Array.from(floats(half))).toEqual([1, -2, 65504, 2 ** -24, Number.POSITIVE_INFINITY]);
    expect(Array.from(floats({ dtype: 'bfloat16', dims: [2], data: Uint16Array.of(0x3f80, 0x4049) }))).toEqual([1, 3.140625]);
    expect(() => floats({ dtype: 'int8', dims: [1], data: Int8Array.of(1) })).toThrow(/float weights only/);
    const stored = { dtype: 'bfloat16', dims: [1, 2], data: Uint16Array.of(0x3f80, 0xbf80) };
    const src = cachedFloat32({ has: (n) => n === 'w', read: () => stored });
    expect(src.read('w')).toEqual({ dtype: 'float32', dims: [1, 2], data: Float32Array.of(1, -1) });
    expect(src.float32('w')).toBe(src.read('w').data); // converted once
  });
});
