import {
  FP32,
  Graph,
  InvalidOptionError,
  linear,
  param,
  readWeight,
  tensor,
  type Value,
  type WeightFormat,
  type WeightSink,
  type WeightSource,
} from '@llava-mini/core';
import { llamaLayer, ropeCaches } from '@llava-mini/llm';
import { DEFAULT_MAX_POSITIONS, readPrefusionConfig } from './config.js';

export interface PrefusionGraphOptions {
  /** Weight and activation format (default float32). */
  format?: WeightFormat;
  /** C*C: rows of the `compressed` input. */
  compressedTokens: number;
  /** RoPE cache rows; positions must stay below it (default DEFAULT_MAX_POSITIONS). */
  maxPositions?: number;
  /** Where initializer bytes go (e.g. an ExternalDataWriter); inline by default. */
  weights?: WeightSink;
}

/**
 * Projector + modality pre-fusion (spec §3, §5 step 6):
 *   X  = [projector(image_features); projector(compressed); text_embeds]       [1, T, H]
 *   X' = prefusion_layers(X)  (LLaMA blocks, RoPE at position_ids, mask = attention_bias, no final norm)
 *   vision_tokens = X'[compressed rows], fused_text = X'[text rows]
 *
 * I/O: image_features [1, M, D], compressed [1, C*C, D], text_embeds [1, L, H],
 * position_ids int64 [1, T], attention_bias [1, 1, T, T] -> vision_tokens [1, C*C, H], fused_text [1, L, H].
 * Float I/O is in the format's dtype. Padded text rows come out fused; the runtime restores them.
 */
export function buildPrefusionGraph(src: WeightSource, json: Record<string, unknown>, options: PrefusionGraphOptions): Graph {
  const { llama: c, visionHidden: D, layers } = readPrefusionConfig(json);
  const format = options.format ?? FP32;
  const dtype = format.dtype;
  const CC = options.compressedTokens;
  const maxPositions = options.maxPositions ?? DEFAULT_MAX_POSITIONS;
  if (!Number.isInteger(CC) || CC < 1) throw new InvalidOptionError(`compressedTokens must be a positive integer, got ${CC}`);
  if (typeof json.compressor_size === 'number' && CC !== json.compressor_size ** 2) {
    throw new InvalidOptionError(`compressedTokens=${CC} but config compressor_size=${json.compressor_size} gives ${json.compressor_size ** 2}`);
  }
  if (!Number.isInteger(maxPositions) || maxPositions < 1) throw new InvalidOptionError(`maxPositions must be a positive integer, got ${maxPositions}`);
  const H = c.hiddenSize;
  const headDim = c.headDim;
  const group = c.numHeads / c.numKvHeads;

  const g = new Graph({ name: 'llava-mini-prefusion', weights: options.weights, metadata: { dtype, maxPositions: String(maxPositions) } });
  const image = g.input('image_features', dtype, [1, 'image_tokens', D]);
  const compressed = g.input('compressed', dtype, [1, CC, D]);
  const text = g.input('text_embeds', dtype, [1, 'text_tokens', H]);
  const positionIds = g.input('position_ids', 'int64', [1, 'total_tokens']);
  const attentionBias = g.input('attention_bias', dtype, [1, 1, 'total_tokens', 'total_tokens']);

  // Projector (mlp2x_gelu), one pass over image and compressed rows: Linear D->H, exact GELU, Linear H->H.
  const w = (name: string, shape: number[]) => readWeight(src, `model.mm_projector.${name}`, shape, `mm_hidden_size=${D}, hidden_size=${H}`);
  const projector = (x: Value) => {
    const h = linear(g, x, 'model.mm_projector.0', w('0.weight', [H, D]), w('0.bias', [H]), format);
    return linear(g, g.gelu(h, 'none'), 'model.mm_projector.2', w('2.weight', [H, H]), w('2.bias', [H]), format);
  };
  let x = g.concat([projector(g.concat([image, compressed], 1)), text], 1); //  [1, T, H]

  // RoPE tables (llama3 / linear scaling included), shared by every layer.
  const rope = ropeCaches(c, maxPositions);
  const cos = param(g, 'rope.cos_cache', tensor('float32', [maxPositions, headDim / 2], rope.cos), format);
  const sin = param(g, 'rope.sin_cache', tensor('float32', [maxPositions, headDim / 2], rope.sin), format);

  // GQA by repeating kv heads (HF repeat_kv: query head h reads kv head floor(h / group)), so the
  // fused MultiHeadAttention can take the arbitrary causal + padding mask on every EP.
  const repeatKv = (t: Value) =>
    group === 1 ? t : g.reshape(g.expand(g.reshape(t, [0, 0, c.numKvHeads, 1, headDim]), g.int64s([1, 1, 1, group, 1])), [0, 0, c.numHeads * headDim]);
  const attention = (q: Value, k: Value, v: Value) => {
    const qr = g.rotaryEmbedding(q, positionIds, cos, sin, { numHeads: c.numHeads });
    const kr = g.rotaryEmbedding(k, positionIds, cos, sin, { numHeads: c.numKvHeads });
    return g.multiHeadAttention(qr, repeatKv(kr), repeatKv(v), { numHeads: c.numHeads, attentionBias });
  };
  for (let i = 0; i < layers; i++) x = llamaLayer(g, src, `model.prefusion_layers.${i}`, c, x, attention, format);
  // No final norm.

  // Rows [M, M + C*C) are the vision tokens, rows [M + C*C, T) the fused text.
  const M = g.slice(g.shape(image), [1], [2], [0]);
  const textStart = g.add(M, g.int64s([CC]));
  const T = g.slice(g.shape(positionIds), [1], [2], [0]);
  const axis = g.int64s([1]);
  g.output(g.op('Slice', [x, M, textStart, axis]), 'vision_tokens', dtype, [1, CC, H]);
  g.output(g.op('Slice', [x, textStart, T, axis]), 'fused_text', dtype, [1, 'text_tokens', H]);
  return g;
}
