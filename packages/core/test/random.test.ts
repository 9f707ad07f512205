import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../src/index.js';

describe('mulberry32', () => {
  it('gives the published sequence', () => {
    // The reference C implementation's first outputs for seed 1 (and for seed 0, which is not special).
    const one = mulberry32(1);
    expect([one(), one()].map((x) => x * 2 ** 32)).toEqual([2693262067, 11749833]);
    expect(mulberry32(0)() * 2 ** 32).toBe(1144304738);
  });

  it('depends on the seed only, and stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(mulberry32(43)()).not.toBe(xs[0]);
  });
});
