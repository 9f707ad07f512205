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
 */

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
 * mulberry32 (Tommy Ettinger, public domain): one 32-bit state word, period 2^32. Statistically weak
 * for science but more than enough for test weights, and trivial to port if a Python side ever needs
 * to reproduce the values.
 */
export class Mulberry32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in the open interval (0, 1): never 0, so log() in Box–Muller stays finite. */
  nextUniform(): number {
    return (this.nextUint32() + 0.5) / 0x1_0000_0000;
  }
}

/**
 * `n` samples of normal(mean, std), Box–Muller in its basic (trigonometric) form. Pairs are consumed
 * in order, so the first k values of a longer draw equal a shorter draw of k (k even).
 */
export function normals(seed: number, n: number, mean: number, std: number): Float64Array {
  const rng = new Mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(rng.nextUniform()));
    const theta = 2 * Math.PI * rng.nextUniform();
    out[i] = mean + std * r * Math.cos(theta);
    if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(theta);
  }
  return out;
}
