import {
  blocksPerRow,
  f32ArrayToF16,
  FP32,
  Graph,
  linear,
  param,
  quantizeBlockwise,
  readWeight,
  type Tensor,
  tensor,
  toFloat32,
  UnsupportedConfigError,
  type Value,
  type WeightFormat,
  type WeightSink,
  type WeightSource,
} from '@llava-mini/core';
import { type LlamaConfig, ropeCaches } from './config.js';
import { llamaLayer } from './layer.js';

/** Block quantization of a weight matrix along its input features (MatMulNBits' layout; accuracyLevel only matters for MatMulNBits). */
export type BlockQuant = NonNullable<WeightFormat['quant']>;

export interface LlamaGraphOptions {
  /** Decoder layers: float dtype (also the graph's activation and I/O dtype) and optional MatMulNBits quantization. */
  format?: WeightFormat;
  /** lm_head quantization; default `format.quant`. `null` keeps it float even when the layers are quantized. */
  headQuant?: BlockQuant | null;
  /** Embedding-table quantization (GatherBlockQuantized); default `format.quant`. */
  embeddingQuant?: BlockQuant | null;
  /** Rows of the RoPE cos/sin tables, i.e. the longest context the graph can run; default max_position_embeddings. */
  maxPositions?: number;
  /** Where weight bytes go (an ExternalDataWriter for large models); default inline. */
  weights?: WeightSink;
}

/** Graph I/O names; the pipeline and LlamaModel depend on them. */
export const LLAMA_IO = {
  inputsEmbeds: 'inputs_embeds',
  inputIds: 'input_ids',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  logits: 'logits',
  pastKey: (l: number) => `past_key_values.${l}.key`,
  pastValue: (l: number) => `past_key_values.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`,
  presentValue: (l: number) => `present.${l}.value`,
} as const;

const INT64_MAX = Number.MAX_SAFE_INTEGER;

function floatTensor(dtype: WeightFormat['dtype'], dims: number[], values: Float32Array): Tensor {
  return dtype === 'float32' ? tensor('float32', dims, values) : tensor('float16', dims, f32ArrayToF16(values));
}

function shapeNote(c: LlamaConfig): string {
  return `hidden_size=${c.hiddenSize}, vocab_size=${c.vocabSize}, tie_word_embeddings=${c.tieWordEmbeddings}`;
}

/**
 * The LLaMA backbone with a KV cache, from the checkpoint's tensor names:
 *
 *   x      = inputs_embeds                                       [1, S, H]
 *   x      = model.layers.{l}(x)  for l in 0..L-1                 GQA over past ++ new keys, RoPE inside
 *   last   = x[:, -1:, :]                                         [1, 1, H] only the next token is needed
 *   logits = lm_head(model.norm(last))                            [1, vocab] float32
 *
 * The KV cache is one preallocated buffer per layer and kind, [1, kvHeads, capacity, headDim]: the
 * caller passes the same tensor as `past_key_values.{l}.key` and as the fetch for `present.{l}.key`,
 * so GroupQueryAttention writes the S new rows in place at positions total-S .. total-1.
 * `seqlens_k` = [total - 1], `total_sequence_length` = total (cached + new tokens).
 */
export function buildLlamaGraph(src: WeightSource, c: LlamaConfig, o: LlamaGraphOptions = {}): Graph {
  if (c.headDim % 16 !== 0) {
    throw new UnsupportedConfigError('head_dim', `${c.headDim} is not a multiple of 16, which onnxruntime's GroupQueryAttention needs for its built-in rotary embedding`);
  }
  const format = o.format ?? FP32;
  const dtype = format.dtype;
  const H = c.hiddenSize;
  const g = new Graph({ name: 'llama', weights: o.weights, metadata: { 'llava_mini.stage': 'llm', 'llava_mini.dtype': dtype } });
  const kvShape = [1, c.numKvHeads, 'capacity', c.headDim];

  const inputsEmbeds = g.input(LLAMA_IO.inputsEmbeds, dtype, [1, 'sequence', H]);
  const seqlensK = g.input(LLAMA_IO.seqlensK, 'int32', [1]);
  const totalSequenceLength = g.input(LLAMA_IO.totalSequenceLength, 'int32', []);

  // RoPE tables [maxPositions, headDim/2] with the checkpoint's rope_theta and rope_scaling.
  const positions = o.maxPositions ?? c.maxPositionEmbeddings;
  const rope = ropeCaches(c, positions);
  const cosCache = g.weight('rope.cos_cache', floatTensor(dtype, [positions, c.headDim / 2], rope.cos));
  const sinCache = g.weight('rope.sin_cache', floatTensor(dtype, [positions, c.headDim / 2], rope.sin));

  let x = inputsEmbeds;
  for (let l = 0; l < c.numLayers; l++) {
    const pastKey = g.input(LLAMA_IO.pastKey(l), dtype, kvShape);
    const pastValue = g.input(LLAMA_IO.pastValue(l), dtype, kvShape);
    const attention = (q: Value, k: Value, v: Value): Value => {
      const [out, presentKey, presentValue] = g.groupQueryAttention(
        { query: q, key: k, value: v, pastKey, pastValue, seqlensK, totalSequenceLength, cosCache, sinCache },
        { numHeads: c.numHeads, kvNumHeads: c.numKvHeads },
      );
      g.output(presentKey, LLAMA_IO.presentKey(l), dtype, kvShape);
      g.output(presentValue, LLAMA_IO.presentValue(l), dtype, kvShape);
      return out;
    };
    x = llamaLayer(g, src, `model.layers.${l}`, c, x, attention, format);
  }

  const last = g.slice(x, [-1], [INT64_MAX], [1]); // [1, 1, H]
  const normWeight = readWeight(src, 'model.norm.weight', [H], shapeNote(c));
  const normed = g.simplifiedLayerNorm(last, param(g, 'model.norm.weight', normWeight, format), c.rmsNormEps);
  const headFormat = withQuant(format, o.headQuant);
  const logits = linear(g, normed, 'lm_head', headWeight(src, c), undefined, headFormat); // [1, 1, vocab]
  const logits32 = dtype === 'float32' ? logits : g.cast(logits, 'float32');
  g.output(g.reshape(logits32, [1, c.vocabSize]), LLAMA_IO.logits, 'float32', [1, c.vocabSize]);
  return g;
}

/**
 * Token embeddings for generated ids: input_ids int64 [1, S] -> inputs_embeds [1, S, H] in the
 * backbone's dtype. With `embeddingQuant` the table is stored block-quantized (uint8) and rows are
 * dequantized as they are gathered (onnxruntime's GatherBlockQuantized), which keeps an 8B model's
 * table (128256 x 4096) under WebGPU's buffer limits.
 */
export function buildEmbeddingsGraph(src: WeightSource, c: LlamaConfig, o: LlamaGraphOptions = {}): Graph {
  const format = o.format ?? FP32;
  const dtype = format.dtype;
  const H = c.hiddenSize;
  const V = c.vocabSize;
  const g = new Graph({ name: 'llama_embeddings', weights: o.weights, metadata: { 'llava_mini.stage': 'llm-embeddings', 'llava_mini.dtype': dtype } });
  const ids = g.input(LLAMA_IO.inputIds, 'int64', [1, 'sequence']);
  const table = readWeight(src, 'model.embed_tokens.weight', [V, H], shapeNote(c));
  const quant = o.embeddingQuant === undefined ? format.quant : o.embeddingQuant;
  let embeds: Value;
  if (!quant) {
    embeds = g.gather(param(g, 'model.embed_tokens.weight', table, format), ids, 0);
  } else {
    const q = quantizeBlockwise(toFloat32(table), V, H, { bits: quant.bits, blockSize: quant.blockSize });
    const nb = blocksPerRow(H, quant.blockSize);
    const rows = g.op(
      'GatherBlockQuantized',
      [
        g.weight('model.embed_tokens.qweight', tensor('uint8', [V, (nb * quant.blockSize * quant.bits) / 8], q.data)),
        ids,
        g.weight('model.embed_tokens.scales', floatTensor(dtype, [V, nb], q.scales)),
        g.weight('model.embed_tokens.zero_points', tensor('uint8', [V, q.zeroPoints.length / V], q.zeroPoints)),
      ],
      { bits: quant.bits, block_size: quant.blockSize, gather_axis: 0, quantize_axis: 1 },
      { domain: 'com.microsoft' },
    ); // [1, S, nb * blockSize]: rows come back padded to whole blocks
    embeds = nb * quant.blockSize === H ? rows : g.slice(rows, [0], [H], [2]);
  }
  g.output(embeds, LLAMA_IO.inputsEmbeds, dtype, [1, 'sequence', H]);
  return g;
}

function headWeight(src: WeightSource, c: LlamaConfig): Tensor {
  const name = c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  return readWeight(src, name, [c.vocabSize, c.hiddenSize], shapeNote(c));
}

function withQuant(format: WeightFormat, quant: BlockQuant | null | undefined): WeightFormat {
  if (quant === undefined) return format;
  return quant === null ? { dtype: format.dtype } : { dtype: format.dtype, quant };
}
