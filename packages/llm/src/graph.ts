import {
  FP32,
  Graph,
  linear,
  param,
  readWeight,
  type Tensor,
  UnsupportedConfigError,
  type Value,
  type WeightFormat,
  type WeightSource,
} from '@llava-mini/core';
import { type LlamaConfig, ropeCaches } from './config.js';
import { type AttentionKernel, promptAttention, promptAttentionInputs, rowsAttention } from './attention.js';
import { type BlockQuant, type EmbeddingGraphOptions, floatTensor, shapeNote, tokenEmbeddings } from './embedding.js';
import { LLAMA_IO } from './io.js';
import { llamaLayer } from './layer.js';

export type { BlockQuant } from './embedding.js';

/** `format`: the decoder layers' float dtype (also the graph's activation and I/O dtype) and optional MatMulNBits quantization. */
export interface LlamaGraphOptions extends EmbeddingGraphOptions {
  /** lm_head quantization; default `format.quant`. `null` keeps it float even when the layers are quantized. */
  headQuant?: BlockQuant | null;
  /** Rows of the RoPE cos/sin tables, i.e. the longest context the graph can run; default max_position_embeddings. */
  maxPositions?: number;
  /**
   * How the KV cache crosses the graph boundary. 'rows' (default for float32): the cache is an input
   * only and the graph returns the new rows (rowsAttention), so a run fetches S rows, not the whole
   * cache. 'shared' (default for float16, the GPU targets): GroupQueryAttention's past and present
   * share one buffer, written in place, and the present (the whole cache) is an output.
   */
  kvCache?: KvCacheMode;
  /**
   * 'rows' mode: a run of one sequence with PROMPT_KERNEL_MIN_ROWS rows or more goes through
   * GroupQueryAttention (default true); false leaves every run to the decode kernel, as graphs
   * written before it did (the benches compare the two).
   */
  promptKernel?: boolean;
}

export type KvCacheMode = 'rows' | 'shared';

export { LLAMA_IO } from './io.js';

const INT64_MAX = Number.MAX_SAFE_INTEGER;

/**
 * The LLaMA backbone with a KV cache, from the checkpoint's tensor names:
 *
 *   x      = inputs_embeds ++ model.embed_tokens[input_ids]      [B, S, H] (along the sequence)
 *   x      = model.layers.{l}(x)  for l in 0..L-1                 attention over cached ++ new keys, RoPE inside
 *   last   = x[:, -1:, :]                                         [B, 1, H] only the next token is needed
 *   logits = lm_head(model.norm(last))                            [B, vocab] float32
 *
 * The KV cache is one buffer per layer and kind, [B, kvHeads, capacity, headDim], in one of two
 * modes (LlamaGraphOptions.kvCache):
 * - 'rows': `past_key_values.*` are inputs only; `position_ids` [B, S], `past_bias` [B, 1, 1, 1,
 *   capacity] (0 for held rows, -inf beyond) and `causal_bias` [S, S] say what each new row sees;
 *   the outputs `new_key_values.{l}.*` [B, kvHeads, S, headDim] are the new rows, which the caller
 *   writes into its cache. B > 1 decodes several sequences in one run. A run of one sequence with
 *   `prompt_kernel_min_rows` rows or more (int64 [1]; LlamaModel feeds PROMPT_KERNEL_MIN_ROWS)
 *   takes GroupQueryAttention, which reads neither bias: the
 *   held rows must be the cache's first rows and the positions must run on from them (the cache
 *   strategies feed exactly that).
 * - 'shared' (B = 1): the caller passes the same tensor as `past_key_values.{l}.key` and as the
 *   fetch for `present.{l}.key`, so GroupQueryAttention writes the S new rows in place at positions
 *   total-S .. total-1. `seqlens_k` = [total - 1], `total_sequence_length` = total.
 */
export function buildLlamaGraph(src: WeightSource, c: LlamaConfig, o: LlamaGraphOptions = {}): Graph {
  if (c.headDim % 16 !== 0) {
    throw new UnsupportedConfigError('head_dim', `${c.headDim} is not a multiple of 16, which onnxruntime's GroupQueryAttention needs for its built-in rotary embedding`);
  }
  const format = o.format ?? FP32;
  const dtype = format.dtype;
  const H = c.hiddenSize;
  const g = new Graph({ name: 'llama', weights: o.weights, metadata: { 'llava_mini.stage': 'llm', 'llava_mini.dtype': dtype } });
  const mode = o.kvCache ?? (dtype === 'float32' ? 'rows' : 'shared');
  if (mode === 'rows' && dtype !== 'float32') throw new UnsupportedConfigError('kvCache', "'rows' needs float32 activations (onnxruntime's CPU FusedMatMul is float32 only)");
  const B = mode === 'rows' ? 'batch' : 1;
  const kvShape = [B, c.numKvHeads, 'capacity', c.headDim];

  // The new rows: embeddings given by the caller (e.g. text fused with pictures), then the rows of
  // token ids looked up here, so a decode step is one run. Either may be empty.
  const inputsEmbeds = g.input(LLAMA_IO.inputsEmbeds, dtype, [B, 'embedded', H]);
  const inputIds = g.input(LLAMA_IO.inputIds, 'int64', [B, 'ids']);
  const embeddingQuant = o.embeddingQuant === undefined ? format.quant : o.embeddingQuant;
  // RoPE tables [maxPositions, headDim/2] with the checkpoint's rope_theta and rope_scaling.
  const positions = o.maxPositions ?? c.maxPositionEmbeddings;
  const rope = ropeCaches(c, positions);
  const cosCache = g.weight('rope.cos_cache', floatTensor(dtype, [positions, c.headDim / 2], rope.cos));
  const sinCache = g.weight('rope.sin_cache', floatTensor(dtype, [positions, c.headDim / 2], rope.sin));

  let layerAttention: (l: number) => (q: Value, k: Value, v: Value) => Value;
  if (mode === 'rows') {
    const positionIds = g.input(LLAMA_IO.positionIds, 'int64', [B, 'sequence']);
    const io = {
      positionIds,
      pastBias: g.input(LLAMA_IO.pastBias, dtype, [B, 1, 1, 1, 'capacity']),
      causalBias: g.input(LLAMA_IO.causalBias, dtype, ['sequence', 'sequence']),
      cosCache,
      sinCache,
    };
    // A prompt of one sequence runs through the kernel made for many rows, a decode step (or a
    // batch of them) through the one that only reads the cache; both branches share the weights.
    // The fewest rows that take the prompt kernel is an input, so a runtime whose GroupQueryAttention
    // is the slower kernel (RuntimeCapabilities.promptAttention) keeps every run on the decode kernel.
    const prompt = o.promptKernel === false ? undefined : { ...io, ...promptAttentionInputs(g, positionIds, g.input(LLAMA_IO.promptKernelMinRows, 'int64', [1])) };
    layerAttention = (l) => (q, k, v) => {
      const pastKey = g.input(LLAMA_IO.pastKey(l), dtype, kvShape);
      const pastValue = g.input(LLAMA_IO.pastValue(l), dtype, kvShape);
      const kernel = <I>(attend: AttentionKernel<I>, kio: I) => (b: Graph) => {
        const r = attend(b, c, kio, pastKey, pastValue, q, k, v);
        return [r.out, r.newKey, r.newValue];
      };
      const [out, newKey, newValue] = prompt
        ? g.ifElse(prompt.isPrompt, [dtype, dtype, dtype], kernel(promptAttention, prompt), kernel(rowsAttention, io))
        : kernel(rowsAttention, io)(g);
      g.output(newKey, LLAMA_IO.newKey(l), dtype, [B, c.numKvHeads, 'sequence', c.headDim]);
      g.output(newValue, LLAMA_IO.newValue(l), dtype, [B, c.numKvHeads, 'sequence', c.headDim]);
      return out;
    };
  } else {
    const seqlensK = g.input(LLAMA_IO.seqlensK, 'int32', [1]);
    const totalSequenceLength = g.input(LLAMA_IO.totalSequenceLength, 'int32', []);
    layerAttention = (l) => (q, k, v) => {
      const pastKey = g.input(LLAMA_IO.pastKey(l), dtype, kvShape);
      const pastValue = g.input(LLAMA_IO.pastValue(l), dtype, kvShape);
      const [out, presentKey, presentValue] = g.groupQueryAttention(
        { query: q, key: k, value: v, pastKey, pastValue, seqlensK, totalSequenceLength, cosCache, sinCache },
        { numHeads: c.numHeads, kvNumHeads: c.numKvHeads },
      );
      g.output(presentKey, LLAMA_IO.presentKey(l), dtype, kvShape);
      g.output(presentValue, LLAMA_IO.presentValue(l), dtype, kvShape);
      return out;
    };
  }

  let x = g.concat([inputsEmbeds, tokenEmbeddings(g, src, c, inputIds, dtype, embeddingQuant)], 1); // [B, S, H]
  for (let l = 0; l < c.numLayers; l++) x = llamaLayer(g, src, `model.layers.${l}`, c, x, layerAttention(l), format);

  const last = g.slice(x, [-1], [INT64_MAX], [1]); // [B, 1, H]
  const normWeight = readWeight(src, 'model.norm.weight', [H], shapeNote(c));
  const normed = g.simplifiedLayerNorm(last, param(g, 'model.norm.weight', normWeight, format), c.rmsNormEps);
  const headFormat = withQuant(format, o.headQuant);
  const logits = linear(g, normed, 'lm_head', headWeight(src, c), undefined, headFormat); // [1, 1, vocab]
  const logits32 = dtype === 'float32' ? logits : g.cast(logits, 'float32');
  g.output(g.reshape(logits32, [-1, c.vocabSize]), LLAMA_IO.logits, 'float32', [B, c.vocabSize]);
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
