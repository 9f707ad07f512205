import {
  FP32,
  Graph,
  InvalidOptionError,
  linear,
  param,
  readWeight,
  type Tensor,
  tensor,
  toFloat32,
  type WeightFormat,
  type WeightSink,
  type WeightSource,
} from '@llava-mini/core';
import type { CompressorConfig } from './config.js';
import { keyPositionTable } from './pos.js';

export interface CompressorGraphOptions {
  /** Weight and activation format (default float32). */
  format?: WeightFormat;
  /** s: the key features form an s x s grid (24 for 336px CLIP, 24N in HD mode). */
  keyGrid: number;
  /** Where initializer bytes go (e.g. an ExternalDataWriter); inline by default. */
  weights?: WeightSink;
}

const P = 'model.compressor';
/** Graph I/O names; the runtime reads the dtype and the s*s key tokens from the input. */
export const COMPRESSOR_INPUT = 'image_features';
export const COMPRESSOR_OUTPUT = 'compressed';

/** Rows [part*D, (part+1)*D) of nn.MultiheadAttention's packed in_proj (part 0 = q, 1 = k, 2 = v). */
function third(t: Tensor, part: number, D: number): Tensor {
  const per = t.dims.length === 2 ? D * D : D;
  const dims = t.dims.length === 2 ? [D, D] : [D];
  return tensor(t.dtype, dims, t.data.subarray(part * per, (part + 1) * per) as never);
}

/**
 * The LLaVA-Mini compressor (spec §2.2): C*C learnable queries cross-attend once to the CLIP patch
 * features, in the CLIP width D, before the projector.
 *
 * I/O: `image_features` [B, s*s, D] -> `compressed` [B, C*C, D]; B (video frames) is symbolic.
 */
export function buildCompressorGraph(src: WeightSource, config: CompressorConfig, options: CompressorGraphOptions): Graph {
  const format = options.format ?? FP32;
  const s = options.keyGrid;
  if (!Number.isInteger(s) || s < 1) throw new InvalidOptionError(`keyGrid must be a positive integer, got ${s}`);
  const { queries: Q, hidden: D, heads, layerNormEps: eps } = config;
  const dtype = format.dtype;
  const g = new Graph({ name: 'llava-mini-compressor', weights: options.weights, metadata: { dtype, keyGrid: String(s) } });
  const why = `C*C=${Q}, D=${D} (from ${P}.query)`;
  const w = (name: string, shape: number[]) => readWeight(src, `${P}.${name}`, shape, why);
  const p = (name: string, shape: number[]) => param(g, `${P}.${name}`, w(name, shape), format);
  const features = g.input(COMPRESSOR_INPUT, dtype, ['batch', s * s, D]);

  // Key positional table: the CxC query table bicubically resized to s x s, computed once here.
  const posEmbed = w('pos_embed', [Q, D]);
  const keyPos = param(g, `${P}.key_pos_embed`, tensor('float32', [s * s, D], keyPositionTable(toFloat32(posEmbed), config.size, D, s)), format);

  // x = ln_kv(kv_proj(features)), kv_proj = identity                          [B, s*s, D]
  const x = g.layerNorm(features, p('ln_kv.weight', [D]), p('ln_kv.bias', [D]), eps);

  // Query side, the same for every image: ln_q(query) + pos_embed (the un-resized table)   [C*C, D]
  const q = g.add(g.layerNorm(p('query', [Q, D]), p('ln_q.weight', [D]), p('ln_q.bias', [D]), eps), param(g, `${P}.pos_embed`, posEmbed, format));

  // nn.MultiheadAttention: packed in_proj split into q/k/v thirds, in that order.
  const inW = w('attn.in_proj_weight', [3 * D, D]);
  const inB = w('attn.in_proj_bias', [3 * D]);
  const qProj = linear(g, q, `${P}.attn.q_proj`, third(inW, 0, D), third(inB, 0, D), format); //   [C*C, D]
  const kProj = linear(g, g.add(x, keyPos), `${P}.attn.k_proj`, third(inW, 1, D), third(inB, 1, D), format); // [B, s*s, D]
  const vProj = linear(g, x, `${P}.attn.v_proj`, third(inW, 2, D), third(inB, 2, D), format); // [B, s*s, D] (no positions on values)

  // Broadcast the constant queries over the batch: [B, C*C, D]
  const batch = g.slice(g.shape(features), [0], [1], [0]);
  const qBatch = g.expand(g.unsqueeze(qProj, [0]), g.concat([batch, g.int64s([Q, D])], 0));

  // One multi-head attention over all s*s keys, no mask, scale 1/sqrt(D/heads).
  const attn = g.multiHeadAttention(qBatch, kProj, vProj, { numHeads: heads });
  const out = linear(g, attn, `${P}.attn.out_proj`, w('attn.out_proj.weight', [D, D]), w('attn.out_proj.bias', [D]), format);

  // No residual, MLP or output norm.
  g.output(out, COMPRESSOR_OUTPUT, dtype, ['batch', Q, D]);
  return g;
}
