import { describe, expect, it } from 'vitest';
import { blocksPerRow, dequantizeBlockwise, InvalidOptionError, quantizeBlockwise } from '../src/index.js';
import { seededFloats } from './helpers.js';

describe('block quantization (MatMulNBits layout)', () => {
  for (const bits of [8, 4] as const) {
    for (const [N, K, blockSize] of [[16, 64, 32], [5, 100, 16], [3, 48, 32]] as const) {
      it(`${bits}-bit, N=${N} K=${K} block ${blockSize}: every value within scale/2 of the original`, () => {
        const w = seededFloats(N * K, N * 1000 + K, 0.3);
        const q = quantizeBlockwise(w, N, K, { bits, blockSize });
        const nb = blocksPerRow(K, blockSize);
        expect(q.data.length).toBe((N * nb * blockSize * bits) / 8);
        expect(q.zeroPoints.length).toBe(N * (bits === 8 ? nb : Math.ceil(nb / 2)));
        const back = dequantizeBlockwise(q);
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            const scale = q.scales[n * nb + Math.floor(k / blockSize)];
            expect(Math.abs(back[n * K + k] - w[n * K + k])).toBeLessThanOrEqual(scale / 2 + 1e-7);
          }
        }
        // The bound in absolute terms: a block's range / (2^bits - 1) / 2.
        const worst = Math.max(...Array.from(back, (v, i) => Math.abs(v - w[i])));
        expect(worst).toBeLessThanOrEqual(0.6 / ((1 << bits) - 1) / 2 + 1e-7);
      });
    }
  }
  for (const bits of [8, 4] as const) {
    it(`${bits}-bit symmetric: zero points 2^(bits-1), each value within |scale|/2 (4-bit: the clamped one within |scale|)`, () => {
      const [N, K, blockSize] = [6, 128, 32]; // an even block count: no padding nibble in the 4-bit zero points
      const w = seededFloats(N * K, 77 + bits, 0.3);
      const q = quantizeBlockwise(w, N, K, { bits, blockSize, symmetric: true });
      expect(q.symmetric).toBe(true);
      const mid = 1 << (bits - 1);
      expect(Array.from(q.zeroPoints)).toEqual(new Array(q.zeroPoints.length).fill(bits === 8 ? mid : mid | (mid << 4)));
      const back = dequantizeBlockwise(q);
      let clamped = 0;
      for (let i = 0; i < N * K; i++) {
        const scale = Math.abs(q.scales[Math.floor(i / K) * (K / blockSize) + Math.floor((i % K) / blockSize)]);
        const err = Math.abs(back[i] - w[i]);
        if (err > scale / 2 + 1e-7) clamped++;
        expect(err).toBeLessThanOrEqual(scale + 1e-7);
      }
      expect(clamped).toBeLessThanOrEqual(bits === 8 ? 0 : (N * K) / blockSize); // at most one per block
      // The block's largest magnitude is exact (it defines the scale).
      const blk = w.subarray(0, blockSize);
      const m = blk.reduce((a, v) => (Math.abs(v) > Math.abs(a) ? v : a), 0);
      expect(back[blk.indexOf(m)]).toBeCloseTo(m, 6);
    });
  }
  it('keeps zeros exact and handles constant blocks', () => {
    const w = new Float32Array(64).fill(0.25);
    w.fill(0, 32);
    const back = dequantizeBlockwise(quantizeBlockwise(w, 1, 64, { bits: 4 }));
    expect(Array.from(back.subarray(32))).toEqual(new Array(32).fill(0));
    expect(Math.abs(back[0] - 0.25)).toBeLessThan(0.25 / 15);
  });
  it('refuses bad options', () => {
    const w = new Float32Array(64);
    expect(() => quantizeBlockwise(w, 2, 32, { bits: 3 as never })).toThrow(InvalidOptionError);
    expect(() => quantizeBlockwise(w, 2, 32, { blockSize: 24 })).toThrow(/power of two/);
    expect(() => quantizeBlockwise(w, 3, 32)).toThrow(/expected N\*K/);
  });
});
