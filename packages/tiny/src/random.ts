/**
 * Deterministic randomness for the tiny checkpoints.
 *
 * Every tensor gets its own generator, seeded from (seed, tensor name) only. That way a tensor's values
 * never depend on which other tensors exist or the order they are produced in: adding a layer, or
 * dropping the CLIP tensors, leaves every other tensor byte-identical. That is what lets tests compare
 * two checkpoints that differ in one option.
 *
 * Only integer arithmetic (Math.imul, shifts) feeds the generator, and the float math is IEEE-754
 * double with V8's fdlibm-based Math.log/cos/sin, so a given seed gives the same bytes on every machine.
 * The generator is core's mulberry32: trivial to port if a Python side ever needs to reproduce the values.
 */
import { mulberry32 } from '@llava-mini/core';

/** 32-bit FNV-1a over UTF-16 code units; tensor names are ASCII, so this is FNV-1a over their bytes. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finalizer: spreads every input bit over the whole word, so nearby seeds diverge at once. */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The 32-bit seed of one named stream. Both halves of a 53-bit seed count, so seed 1 and 2^32 + 1 differ. */
export function streamSeed(seed: number, name: string): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  return fmix32(fnv1a32(name) ^ fmix32(lo ^ fmix32(hi + 0x9e3779b9)));
}

/**
 * `n` samples of normal(mean, std), Box–Muller in its basic (trigonometric) form. Pairs are consumed
 * in order, so the first k values of a longer draw equal a shorter draw of k (k even).
 */
export function normals(seed: number, n: number, mean: number, std: number): Float64Array {
  const random = mulberry32(seed);
  // Half a step up from mulberry32's [0, 1) grid into (0, 1): never 0, so log() stays finite.
  const uniform = () => random() + 2 ** -33;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const theta = 2 * Math.PI * uniform();
    out[i] = mean + std * r * Math.cos(theta);
    if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(theta);
  }
  return out;
}
