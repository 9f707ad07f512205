/**
 * mulberry32 (Tommy Ettinger, public domain): a seeded generator with one 32-bit word of state and a
 * period of 2^32. Weak for statistics, but small, fast and bit-for-bit the same on every JavaScript
 * engine, which is what sampling with a seed, test data and seeded weights need.
 *
 * Each call of the returned function gives the next value in [0, 1): the 32-bit output divided by
 * 2^32, so `value * 2 ** 32` is that output again, exactly.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
