import {
  FP32,
  Graph,
  InvalidOptionError,
  linear,
  param,
  readWeight,
  tensor,
  UnsupportedConfigError,
  type Value,
  type WeightFormat,
  type WeightSink,
  type WeightSource,
} from '@llava-mini/core';
import { type LlamaConfig, llamaLayer, ropeCaches } from '@llava-mini/llm';
import { DEFAULT_MAX_POSITIONS, type PrefusionConfig } from './config.js';

export interface PrefusionGraphOptions {
  /** Weight and activation format (default float32). Float I/O stays float32 either way: casts are in the graph. */
  format?: WeightFormat;
  /** C*C: rows of the `compressed` input when a picture is given. */
  compressedTokens: number;
  /** RoPE cache rows; positions must stay below it (default DEFAULT_MAX_POSITIONS). */
  maxPositions?: number;
  /** Where initializer bytes go (e.g. an ExternalDataWriter); inline by default. */
  weights?: WeightSink;
}

/** Graph I/O names; the runtime depends on them. */
export const PREFUSION_IO = {
  imageFeatures: 'image_features',
  compressed: 'compressed',
  textEmbeds: 'text_embeds',
  visionTokens: 'vision_tokens',
  fusedText: 'fused_text',
  pastKey: (l: number) => `past.${l}.key`,
  pastValue: (l: number) => `past.${l}.value`,
  prefixKey: (l: number) => `prefix.${l}.key`,
  prefixValue: (l: number) => `prefix.${l}.value`,
  stateKey: (l: number) => `state.${l}.key`,
  stateValue: (l: number) => `state.${l}.value`,
} as const;

/**
 * Projector + modality pre-fusion (spec §3, §5 step 6) as an exact causal prefix problem.
 *
 * The reference runs [image (M); compressed (C*C); prompt (L)] with a causal mask AND key padding on
 * the prompt rows at ids <= 0 (the placeholder, token 0), positions cumsum(valid) - 1, and throws the
 * padded rows' outputs away (spec §3.2-3.3). Padded rows are never attended to, so dropping them
 * before the graph changes no kept row: what is left is plain causal attention at positions 0..T'-1.
 * The picture's rows come first and never see text, so their keys/values are a prefix that can be
 * computed once per picture and reused by any prompt. One graph serves both:
 *
 *   new rows  X = [projector(image_features); projector(compressed); text_embeds]     [1, S, H]
 *   X'        = prefusion_layers(X) over past.{l}.key/value (P cached rows), causal, positions P..P+S-1
 *   outputs   vision_tokens = X'[M : M+C*C]      fused_text = X'[S-L' : S]
 *             prefix.{l}.key/value = the layer's keys/values of the first P + M + C*C rows
 *             (the cached prefix plus this call's picture rows; RoPE applied)  [1, kvHeads, P+M+C*C, headDim]
 *             state.{l}.key/value  = the same over all P + S rows: where a follow-up's text carries on
 *
 * A first look at a picture: P = 0, the picture's rows and the prompt's kept rows. A prompt about a
 * cached picture: M = C*C = 0 and past = the picture's prefix. Attention is onnxruntime's
 * GroupQueryAttention: kv heads read in place (no repeat), the causal mask and RoPE (llama3 / linear
 * scaling tables from llm's ropeCaches) applied by the kernel at position past + i. Float inputs and
 * outputs are float32, cast inside the graph; keys/values stay in the graph's dtype.
 */
export function buildPrefusionGraph(src: WeightSource, config: PrefusionConfig, options: PrefusionGraphOptions): Graph {
  const { llama: c, visionHidden: D, layers } = config;
  const format = options.format ?? FP32;
  const dtype = format.dtype;
  const CC = options.compressedTokens;
  const maxPositions = options.maxPositions ?? DEFAULT_MAX_POSITIONS;
  if (!Number.isInteger(CC) || CC < 1) throw new InvalidOptionError(`compressedTokens must be a positive integer, got ${CC}`);
  if (!Number.isInteger(maxPositions) || maxPositions < 1) throw new InvalidOptionError(`maxPositions must be a positive integer, got ${maxPositions}`);
  if (c.headDim % 16 !== 0) {
    throw new UnsupportedConfigError('head_dim', `${c.headDim} is not a multiple of 16, which onnxruntime's GroupQueryAttention needs for its built-in rotary embedding`);
  }
  const H = c.hiddenSize;
  const g = new Graph({ name: 'llava-mini-prefusion', weights: options.weights, metadata: { dtype, maxPositions: String(maxPositions), compressedTokens: String(CC) } });
  const toDtype = (x: Value) => (dtype === 'float32' ? x : g.cast(x, dtype));
  const toFloat32 = (x: Value) => (dtype === 'float32' ? x : g.cast(x, 'float32'));
  const kvShape = (rows: string | null) => [1, c.numKvHeads, rows, c.headDim];

  const image = g.input(PREFUSION_IO.imageFeatures, 'float32', [1, 'image_tokens', D]);
  const compressed = g.input(PREFUSION_IO.compressed, 'float32', [1, 'compressed_tokens', D]);
  const text = g.input(PREFUSION_IO.textEmbeds, 'float32', [1, 'text_tokens', H]);
  // The past's row count is left unnamed. GroupQueryAttention's shape inference gives present_key/
  // value the past's row dimension whenever total_sequence_length is not a constant (it assumes a
  // shared max-length buffer), but here present has P + S rows. With a name ('past_rows'), present
  // and past look the same size to onnxruntime's memory planner, and in a session split between
  // providers (node WebGPU with attention on the CPU) it gave present's host-to-GPU copy the freed
  // GPU copy of past_key (made for the Shape node below): "Shape mismatch attempting to re-use
  // buffer {1,2,0,16} != {1,2,128,16}". An unnamed dimension equals nothing, so nothing is shared.
  const past = Array.from({ length: layers }, (_, l) => ({
    pastKey: g.input(PREFUSION_IO.pastKey(l), dtype, kvShape(null)),
    pastValue: g.input(PREFUSION_IO.pastValue(l), dtype, kvShape(null)),
  }));

  // Projector (mlp2x_gelu), one pass over image and compressed rows: Linear D->H, exact GELU, Linear H->H.
  const w = (name: string, shape: number[]) => readWeight(src, `model.mm_projector.${name}`, shape, `mm_hidden_size=${D}, hidden_size=${H}`);
  const h = linear(g, toDtype(g.concat([image, compressed], 1)), 'model.mm_projector.0', w('0.weight', [H, D]), w('0.bias', [H]), format);
  const projected = linear(g, g.gelu(h, 'none'), 'model.mm_projector.2', w('2.weight', [H, H]), w('2.bias', [H]), format);
  let x = g.concat([projected, toDtype(text)], 1); // [1, S, H]

  // Row counts: M image rows, C*C compressed, L' text, P past; S = M + C*C + L' new rows.
  const dim = (v: Value, axis: number) => g.slice(g.shape(v), [axis], [axis + 1], [0]); // int64 [1]
  const M = dim(image, 1);
  const pictureEnd = g.add(M, dim(compressed, 1));
  const S = g.add(pictureEnd, dim(text, 1));
  const P = layers ? dim(past[0].pastKey, 2) : g.int64s([0]);
  const total = g.cast(g.add(P, S), 'int32');
  // GroupQueryAttention's lengths for one unpadded sequence: seqlens_k = [total - 1], total as a scalar.
  const lengths = { seqlensK: g.sub(total, g.constant(tensor('int32', [1], Int32Array.of(1)))), totalSequenceLength: g.squeeze(total, [0]) };
  const rope = ropeTables(g, c, maxPositions, format);
  const prefixEnd = g.add(P, pictureEnd);
  const axis2 = g.int64s([2]);

  for (let l = 0; l < layers; l++) {
    const attention = (q: Value, k: Value, v: Value) => {
      const [out, presentKey, presentValue] = g.groupQueryAttention(
        { query: q, key: k, value: v, ...past[l], ...lengths, ...rope },
        { numHeads: c.numHeads, kvNumHeads: c.numKvHeads },
      );
      // The prefix a later prompt can start from: everything up to the end of this call's picture rows.
      const zero = g.int64s([0]);
      g.output(g.op('Slice', [presentKey, zero, prefixEnd, axis2]), PREFUSION_IO.prefixKey(l), dtype, kvShape('prefix_rows'));
      g.output(g.op('Slice', [presentValue, zero, prefixEnd, axis2]), PREFUSION_IO.prefixValue(l), dtype, kvShape('prefix_rows'));
      // And everything, the prompt's rows included: the state a conversation's next prompt continues.
      g.output(g.identity(presentKey), PREFUSION_IO.stateKey(l), dtype, kvShape('state_rows'));
      g.output(g.identity(presentValue), PREFUSION_IO.stateValue(l), dtype, kvShape('state_rows'));
      return out;
    };
    x = llamaLayer(g, src, `model.prefusion_layers.${l}`, c, x, attention, format);
  }
  // No final norm.
  const axis1 = g.int64s([1]);
  g.output(toFloat32(g.op('Slice', [x, M, pictureEnd, axis1])), PREFUSION_IO.visionTokens, 'float32', [1, 'compressed_tokens', H]);
  g.output(toFloat32(g.op('Slice', [x, pictureEnd, S, axis1])), PREFUSION_IO.fusedText, 'float32', [1, 'text_tokens', H]);
  return g;
}

/** RoPE cos/sin tables [maxPositions, headDim/2] with the checkpoint's rope_theta and rope_scaling (the backbone's tables). */
function ropeTables(g: Graph, c: LlamaConfig, maxPositions: number, format: WeightFormat): { cosCache: Value; sinCache: Value } {
  const rope = ropeCaches(c, maxPositions);
  const table = (name: string, values: Float32Array) => param(g, name, tensor('float32', [maxPositions, c.headDim / 2], values), format);
  return { cosCache: table('rope.cos_cache', rope.cos), sinCache: table('rope.sin_cache', rope.sin) };
}
