import {
  blocksPerRow,
  f32ArrayToF16,
  FP32,
  Graph,
  param,
  quantizeBlockwise,
  readWeight,
  type Tensor,
  tensor,
  toFloat32,
  type Value,
  type WeightFormat,
  type WeightSink,
  type WeightSource,
} from '@llava-mini/core';
import type { LlamaConfig } from './config.js';
import { LLAMA_IO } from './io.js';

/** Block quantization of a weight matrix along its input features (MatMulNBits' layout; accuracyLevel only matters for MatMulNBits). */
export type BlockQuant = NonNullable<WeightFormat['quant']>;

/** What the token-embedding table needs of the graph options (LlamaGraphOptions extends it). */
export interface EmbeddingGraphOptions {
  /** Float dtype of the graph's I/O and optional block quantization. */
  format?: WeightFormat;
  /** Embedding-table quantization (GatherBlockQuantized), in the decoder and the embeddings graph; default `format.quant`. */
  embeddingQuant?: BlockQuant | null;
  /** Where weight bytes go (an ExternalDataWriter for large models); default inline. */
  weights?: WeightSink;
}

export function floatTensor(dtype: WeightFormat['dtype'], dims: number[], values: Float32Array): Tensor {
  return dtype === 'float32' ? tensor('float32', dims, values) : tensor('float16', dims, f32ArrayToF16(values));
}

export function shapeNote(c: LlamaConfig): string {
  return `hidden_size=${c.hiddenSize}, vocab_size=${c.vocabSize}, tie_word_embeddings=${c.tieWordEmbeddings}`;
}

/**
 * Rows of model.embed_tokens for ids int64 [B, S] -> [B, S, H] in `dtype`. With `quant` the table is
 * stored block-quantized (uint8) and rows are dequantized as they are gathered (onnxruntime's
 * GatherBlockQuantized), which keeps an 8B model's table (128256 x 4096) under WebGPU's buffer limits.
 */
export function tokenEmbeddings(g: Graph, src: WeightSource, c: LlamaConfig, ids: Value, dtype: WeightFormat['dtype'], quant: BlockQuant | null | undefined): Value {
  const H = c.hiddenSize;
  const V = c.vocabSize;
  const table = readWeight(src, 'model.embed_tokens.weight', [V, H], shapeNote(c));
  if (!quant) return g.gather(param(g, 'model.embed_tokens.weight', table, { dtype }), ids, 0);
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
  ); // [B, S, nb * blockSize]: rows come back padded to whole blocks
  return nb * quant.blockSize === H ? rows : g.slice(rows, [0], [H], [2]);
}

/**
 * Token embeddings alone: input_ids int64 [1, S] -> inputs_embeds [1, S, H] in the backbone's dtype.
 * The decoder looks up its own token ids; this graph is for callers that need the text's embeddings
 * before the decoder runs (the pipeline's pre-fusion), and is loaded only when they ask.
 */
export function buildEmbeddingsGraph(src: WeightSource, c: LlamaConfig, o: EmbeddingGraphOptions = {}): Graph {
  const format = o.format ?? FP32;
  const g = new Graph({ name: 'llama_embeddings', weights: o.weights, metadata: { 'llava_mini.stage': 'llm-embeddings', 'llava_mini.dtype': format.dtype } });
  const ids = g.input(LLAMA_IO.inputIds, 'int64', [1, 'sequence']);
  const embeds = tokenEmbeddings(g, src, c, ids, format.dtype, o.embeddingQuant === undefined ? format.quant : o.embeddingQuant);
  g.output(embeds, LLAMA_IO.inputsEmbeds, format.dtype, [1, 'sequence', c.hiddenSize]);
  return g;
}
