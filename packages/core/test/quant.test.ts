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
