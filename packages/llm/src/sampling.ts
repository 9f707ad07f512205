import { InvalidOptionError, mulberry32 } from '@llava-mini/core';

export interface SamplingOptions {
  /** 0 (default) is greedy decoding; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Keep the k most likely tokens (0 or undefined: all). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p, in (0, 1] (1: all). */
  topP?: number;
  /** > 1 discourages tokens this generation already produced (transformers' rule: logit / p if positive, logit * p if not). Default 1. */
  repetitionPenalty?: number;
  /** Seed of the sampling random numbers; the same seed and logits give the same tokens. */
  seed?: number;
}

/** Throw InvalidOptionError for any sampling option out of range (before any model work). */
export function checkSamplingOptions(o: SamplingOptions): void {
  const { temperature, topK, topP, repetitionPenalty, seed } = o;
  if (temperature !== undefined && !(typeof temperature === 'number' && Number.isFinite(temperature) && temperature >= 0)) {
    throw new InvalidOptionError(`temperature must be a finite number >= 0, got ${String(temperature)}`);
  }
  if (topK !== undefined && !(Number.isSafeInteger(topK) && topK >= 0)) throw new InvalidOptionError(`topK must be an integer >= 0, got ${String(topK)}`);
  if (topP !== undefined && !(typeof topP === 'number' && topP > 0 && topP <= 1)) throw new InvalidOptionError(`topP must be in (0, 1], got ${String(topP)}`);
  if (repetitionPenalty !== undefined && !(typeof repetitionPenalty === 'number' && Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) {
    throw new InvalidOptionError(`repetitionPenalty must be a finite number > 0, got ${String(repetitionPenalty)}`);
  }
  if (seed !== undefined && !(Number.isSafeInteger(seed) && seed >= 0)) throw new InvalidOptionError(`seed must be an integer >= 0, got ${String(seed)}`);
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Picks the next token from logits; keeps the random state across one generation. */
export class Sampler {
  private readonly random: () => number;
  private readonly seen = new Set<number>();

  constructor(private readonly o: SamplingOptions = {}) {
    checkSamplingOptions(o);
    this.random = mulberry32(o.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /** Choose a token and remember it (for the repetition penalty). `logits` is modified. */
  next(logits: Float32Array): number {
    this.penalize(logits);
    const id = (this.o.temperature ?? 0) === 0 ? argmax(logits) : this.sample(logits);
    this.seen.add(id);
    return id;
  }

  private penalize(logits: Float32Array): void {
    const p = this.o.repetitionPenalty ?? 1;
    if (p === 1) return;
    for (const id of this.seen) logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
  }

  private sample(logits: Float32Array): number {
    const t = this.o.temperature as number;
    const k = this.o.topK ?? 0;
    const p = this.o.topP ?? 1;
    const max = logits[argmax(logits)];
    // Tokens more than 40 temperature units below the best weigh < e^-40 of it: leaving them out
    // changes no probability measurably and keeps a 128k vocabulary from being sorted every step.
    const floor = max - 40 * t;
    let order: number[] = [];
    for (let i = 0; i < logits.length; i++) if (logits[i] >= floor) order.push(i);
    if (k > 0 || p < 1) order.sort((a, b) => logits[b] - logits[a] || a - b);
    if (k > 0 && k < order.length) order = order.slice(0, k);
    const weights = order.map((id) => Math.exp((logits[id] - max) / t));
    let total = weights.reduce((a, b) => a + b, 0);
    if (p < 1) {
      // Nucleus: the most likely tokens until their mass reaches p.
      let mass = 0;
      let keep = 0;
      while (keep < order.length && mass < p * total) mass += weights[keep++];
      order.length = keep;
      weights.length = keep;
      total = mass;
    }
    let r = this.random() * total;
    for (let i = 0; i < order.length; i++) {
      r -= weights[i];
      if (r < 0) return order[i];
    }
    return order[order.length - 1];
  }
}

/** An id and its log-probability. */
export interface IdLogprob {
  id: number;
  logprob: number;
}

/**
 * Log-probabilities under softmax(logits): the one of `id`, and the `top` most likely ids with theirs
 * (most likely first, ties to the lower id). Sums in float64 from the largest logit, so nothing
 * overflows; O(vocab * top), with top at most 20.
 */
export function logprobsOf(logits: ArrayLike<number>, id: number, top: number): { logprob: number; top: IdLogprob[] } {
  const max = logits[argmax(logits)];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  // The best `top` ids so far, kept sorted: a new one goes in by insertion.
  const best: number[] = [];
  for (let i = 0; i < logits.length && top > 0; i++) {
    if (best.length === top && logits[i] <= logits[best[top - 1]]) continue;
    let at = best.length;
    while (at > 0 && logits[i] > logits[best[at - 1]]) at--;
    best.splice(at, 0, i);
    if (best.length > top) best.pop();
  }
  return { logprob: logits[id] - logZ, top: best.map((i) => ({ id: i, logprob: logits[i] - logZ })) };
}
