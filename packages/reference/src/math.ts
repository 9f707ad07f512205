/**
 * Plain numeric building blocks, written from the math with float64 accumulation. Matrices are
 * row-major Float32Arrays; a sequence of S vectors of width D is one [S, D] array.
 */

/** y[s] = W x[s] + b for a Linear weight W [out, in]. */
export function linear(x: Float32Array, W: Float32Array, b: Float32Array | undefined, inDim: number, outDim: number): Float32Array {
  const S = x.length / inDim;
  const y = new Float32Array(S * outDim);
  for (let s = 0; s < S; s++) {
    for (let o = 0; o < outDim; o++) {
      let acc = b ? b[o] : 0;
      const wo = o * inDim;
      const xs = s * inDim;
      for (let i = 0; i < inDim; i++) acc += W[wo + i] * x[xs + i];
      y[s * outDim + o] = acc;
    }
  }
  return y;
}

export function layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, D: number, eps: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let s = 0; s < x.length / D; s++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[s * D + i];
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[s * D + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) y[s * D + i] = (x[s * D + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

export function rmsNorm(x: Float32Array, w: Float32Array, D: number, eps: number): Float32Array {
  const y = new Float32Array(x.length);
  for (let s = 0; s < x.length / D; s++) {
    let ms = 0;
    for (let i = 0; i < D; i++) ms += x[s * D + i] ** 2;
    const inv = 1 / Math.sqrt(ms / D + eps);
    for (let i = 0; i < D; i++) y[s * D + i] = x[s * D + i] * inv * w[i];
  }
  return y;
}

export function erf(x: number): number {
  // Taylor series below 3, continued-fraction tail above: |error| < 1e-14 for every x.
  const t = Math.abs(x);
  let r: number;
  if (t < 3) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = 0;
    for (let n = 60; n >= 1; n--) f = (n / 2) / (t + f);
    r = 1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  }
  return x < 0 ? -r : r;
}

export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const quickGelu = (x: number): number => x / (1 + Math.exp(-1.702 * x));
export const silu = (x: number): number => x / (1 + Math.exp(-x));

export function map(x: Float32Array, f: (v: number) => number): Float32Array {
  return x.map(f);
}

export function add(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}

/**
 * Scaled dot-product attention for one head over rows of q [Sq, d] and k, v [Sk, d], with
 * `allowed(i, j)` saying whether query i may see key j. Rows that see nothing give zeros.
 */
export function attendHead(q: Float64Array[], k: Float64Array[], v: Float64Array[], scale: number, allowed: (i: number, j: number) => boolean): Float64Array[] {
  return q.map((qi, i) => {
    const scores: number[] = [];
    let max = -Infinity;
    for (let j = 0; j < k.length; j++) {
      if (!allowed(i, j)) {
        scores.push(-Infinity);
        continue;
      }
      let dot = 0;
      for (let d = 0; d < qi.length; d++) dot += qi[d] * k[j][d];
      scores.push(dot * scale);
      max = Math.max(max, dot * scale);
    }
    const out = new Float64Array(v[0]?.length ?? 0);
    if (max === -Infinity) return out;
    let total = 0;
    const p = scores.map((s) => (s === -Infinity ? 0 : Math.exp(s - max)));
    for (const e of p) total += e;
    for (let j = 0; j < v.length; j++) if (p[j]) for (let d = 0; d < out.length; d++) out[d] += (p[j] / total) * v[j][d];
    return out;
  });
}

/** Split [S, heads*d] into heads x S rows of d (float64). */
export function splitHeads(x: Float32Array, S: number, heads: number, d: number): Float64Array[][] {
  return Array.from({ length: heads }, (_, h) => Array.from({ length: S }, (_, s) => Float64Array.from(x.subarray(s * heads * d + h * d, s * heads * d + (h + 1) * d))));
}

/** Inverse of splitHeads. */
export function mergeHeads(heads: Float64Array[][], S: number, d: number): Float32Array {
  const out = new Float32Array(S * heads.length * d);
  heads.forEach((rows, h) => rows.forEach((row, s) => out.set(row, s * heads.length * d + h * d)));
  return out;
}
