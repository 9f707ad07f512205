import { attendHead, layerNorm, linear, mergeHeads, splitHeads } from './math.js';
import { floats, type RefWeights } from './weights.js';

/** Keys' cubic convolution kernel W(x) with a = -0.75 (PyTorch's bicubic), written piecewise in |x|. */
export function refCubicKernel(x: number): number {
  const a = -0.75;
  const t = Math.abs(x);
  if (t <= 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

/**
 * F.interpolate(img [D, C, C], size=(s, s), mode='bicubic', align_corners=False) on a table stored
 * as rows m = i*C + j; returns rows m' = i'*s + j'. Each output sums the 4x4 neighbourhood of its
 * source point (clamped at the border) with weights W(dy) * W(dx).
 */
export function refBicubicResize(table: Float32Array, C: number, D: number, s: number): Float32Array {
  const out = new Float32Array(s * s * D);
  const source = (dst: number) => (dst + 0.5) * (C / s) - 0.5;
  const clamp = (i: number) => Math.min(C - 1, Math.max(0, i));
  for (let oi = 0; oi < s; oi++) {
    const y = source(oi);
    const y0 = Math.floor(y);
    for (let oj = 0; oj < s; oj++) {
      const x = source(oj);
      const x0 = Math.floor(x);
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let dy = -1; dy <= 2; dy++) {
          for (let dx = -1; dx <= 2; dx++) {
            const w = refCubicKernel(y - (y0 + dy)) * refCubicKernel(x - (x0 + dx));
            acc += w * table[(clamp(y0 + dy) * C + clamp(x0 + dx)) * D + d];
          }
        }
        out[(oi * s + oj) * D + d] = acc;
      }
    }
  }
  return out;
}

/**
 * The compressor on one image (spec §2.2): features [M, D] with M = s*s -> [C*C, D]. C, D come
 * from the stored query, heads from `compressor_num_heads` (8 when absent).
 */
export function refCompressor(src: RefWeights, json: Record<string, any>, features: Float32Array): Float32Array {
  const W = (n: string) => floats(src.read(`model.compressor.${n}`));
  const [Q, D] = src.read('model.compressor.query').dims;
  const C = Math.round(Math.sqrt(Q));
  const heads: number = json.compressor_num_heads ?? 8;
  const headDim = D / heads;
  const M = features.length / D;
  const s = Math.floor(Math.sqrt(M));
  const eps = 1e-5;

  const posEmbed = W('pos_embed');
  const keyPos = s === C ? posEmbed : refBicubicResize(posEmbed, C, D, s);
  const x = layerNorm(features, W('ln_kv.weight'), W('ln_kv.bias'), D, eps);
  const q = layerNorm(W('query'), W('ln_q.weight'), W('ln_q.bias'), D, eps).map((v, i) => v + posEmbed[i]);
  const k = x.map((v, i) => v + keyPos[i]);

  const inW = W('attn.in_proj_weight');
  const inB = W('attn.in_proj_bias');
  const proj = (input: Float32Array, part: number) =>
    linear(input, inW.subarray(part * D * D, (part + 1) * D * D), inB.subarray(part * D, (part + 1) * D), D, D);
  const qh = splitHeads(proj(q, 0), Q, heads, headDim);
  const kh = splitHeads(proj(k, 1), M, heads, headDim);
  const vh = splitHeads(proj(x, 2), M, heads, headDim);
  const all = () => true;
  const o = qh.map((rows, h) => attendHead(rows, kh[h], vh[h], 1 / Math.sqrt(headDim), all));
  return linear(mergeHeads(o, Q, headDim), W('attn.out_proj.weight'), W('attn.out_proj.bias'), D, D);
}
