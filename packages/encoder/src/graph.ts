import { CheckpointMismatchError, FP32, Graph, linear, param, readWeight, type Value, type WeightFormat, type WeightSink, type WeightSource } from '@llava-mini/core';
import type { VisionConfig } from './config.js';

/** Where the tower's tensors live: inside a LLaVA-Mini checkpoint, or a standalone CLIPVisionModel folder. */
export const VISION_PREFIXES = ['model.vision_tower.vision_tower.vision_model.', 'vision_model.'] as const;

export const ENCODER_INPUT = 'pixel_values';
export const ENCODER_OUTPUT = 'image_features';

export interface EncoderGraphOptions {
  /** Activations and weights in float32 (default) or float16; quantized Linear weights with `quant`. */
  format?: WeightFormat;
  /** Tensor-name prefix ending in `vision_model.`; found from the checkpoint when omitted. */
  prefix?: string;
  /** Where weight bytes go (an ExternalDataWriter when converting to files); inline by default. */
  weights?: WeightSink;
}

/** The prefix under which `src` holds the CLIP tower. */
export function detectVisionPrefix(src: WeightSource): string {
  const prefix = VISION_PREFIXES.find((p) => src.has(`${p}embeddings.class_embedding`));
  if (!prefix) {
    throw new CheckpointMismatchError(`checkpoint has no CLIP vision tower: none of ${VISION_PREFIXES.map((p) => `'${p}embeddings.class_embedding'`).join(', ')} exists`);
  }
  return prefix;
}

/**
 * The CLIP vision tower (HF `CLIPVisionModel.vision_model`) as LLaVA uses it, from the checkpoint's
 * own tensor names. Only the blocks that feed hidden_states[mm_vision_select_layer] are built (23 of
 * 24 for the release); the blocks after it and `post_layernorm` are never read.
 *
 *   pixel_values   [P, 3, S, S]   (P pieces: HD sub-images and video frames go through in one call)
 *   image_features [P, g*g, D]    (g = S / patch; [P, g*g + 1, D] with CLS first for 'cls_patch')
 */
export function buildEncoderGraph(src: WeightSource, c: VisionConfig, options: EncoderGraphOptions = {}): Graph {
  const format = options.format ?? FP32;
  const p = options.prefix ?? detectVisionPrefix(src);
  const { hiddenSize: D, intermediateSize: I, gridSize: grid, patchSize: k, imageSize: S } = c;
  const T = grid * grid + 1;
  const why = `the vision config (hidden_size=${D}, intermediate_size=${I}, image_size=${S}, patch_size=${k})`;
  const w = (rel: string, shape: number[]) => readWeight(src, `${p}${rel}`, shape, why);
  const g = new Graph({
    name: 'clip_vision',
    weights: options.weights,
    metadata: { select_layer: String(c.selectLayer), blocks: String(c.blocks), select_feature: c.selectFeature, dtype: format.dtype },
  });
  const norm = (x: Value, rel: string) =>
    g.layerNorm(x, param(g, `${p}${rel}.weight`, w(`${rel}.weight`, [D]), format), param(g, `${p}${rel}.bias`, w(`${rel}.bias`, [D]), format), c.layerNormEps);
  const dense = (x: Value, rel: string, out: number, inp: number) => linear(g, x, `${p}${rel}`, w(`${rel}.weight`, [out, inp]), w(`${rel}.bias`, [out]), format);

  const pixels = g.input(ENCODER_INPUT, format.dtype, ['pieces', 3, S, S]);

  // Embeddings: a bias-free patch conv, flattened row-major over the grid x grid patches, CLS first.
  let h = g.scope('embeddings', () => {
    const patchW = param(g, `${p}embeddings.patch_embedding.weight`, w('embeddings.patch_embedding.weight', [D, 3, k, k]), format);
    const patches = g.conv(pixels, patchW, undefined, { kernel: [k, k], strides: [k, k] }); // [P, D, grid, grid]
    const tokens = g.transpose(g.reshape(patches, [0, D, grid * grid]), [0, 2, 1]); // [P, grid*grid, D]
    const cls = g.reshape(param(g, `${p}embeddings.class_embedding`, w('embeddings.class_embedding', [D]), format), [1, 1, D]);
    const P = g.slice(g.shape(tokens), [0], [1], [0]); // [1] = P
    const clsTokens = g.expand(cls, g.concat([P, g.int64s([1, D])], 0)); // [P, 1, D]
    const pos = param(g, `${p}embeddings.position_embedding.weight`, w('embeddings.position_embedding.weight', [T, D]), format);
    return g.add(g.concat([clsTokens, tokens], 1), pos); // [P, T, D]
  });
  h = norm(h, 'pre_layrnorm'); // (sic: transformers' spelling, which checkpoints carry)

  for (let i = 0; i < c.blocks; i++) {
    const b = `encoder.layers.${i}`;
    h = g.scope(b, () => {
      // h += out_proj(attention(LN1(h)))
      const x = norm(h, `${b}.layer_norm1`);
      const q = dense(x, `${b}.self_attn.q_proj`, D, D);
      const kk = dense(x, `${b}.self_attn.k_proj`, D, D);
      const v = dense(x, `${b}.self_attn.v_proj`, D, D);
      const attn = g.multiHeadAttention(q, kk, v, { numHeads: c.numHeads, scale: 1 / Math.sqrt(c.headDim) }); // [P, T, D]
      const h1 = g.add(h, dense(attn, `${b}.self_attn.out_proj`, D, D));
      // h += fc2(quick_gelu(fc1(LN2(h))))
      const y = norm(h1, `${b}.layer_norm2`);
      const mlp = dense(g.quickGelu(dense(y, `${b}.mlp.fc1`, I, D)), `${b}.mlp.fc2`, D, I);
      return g.add(h1, mlp);
    });
  }

  // LLaVA's feature_select: 'patch' drops the CLS token.
  const features = c.selectFeature === 'patch' ? g.slice(h, [1], [T], [1]) : h;
  g.output(features, ENCODER_OUTPUT, format.dtype, ['pieces', c.tokens, D]);
  return g;
}
