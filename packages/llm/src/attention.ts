import { attr, type Graph, type Value } from '@llava-mini/core';
import type { LlamaConfig } from './config.js';

const INT64_MAX = Number.MAX_SAFE_INTEGER;

/** A layer's attention over its cache (past key and value) and the new rows' q, k, v: the output and the new rows to cache. */
export type AttentionKernel<I> = (g: Graph, c: LlamaConfig, io: I, pastKey: Value, pastValue: Value, q: Value, k: Value, v: Value) => { out: Value; newKey: Value; newValue: Value };

/** Values every layer's cache-reading attention shares (graph inputs and the RoPE tables). */
export interface RowsAttentionInputs {
  /** int64 [B, S]: the position of each new row (its sequence's cached length + its index). */
  positionIds: Value;
  /** float [B, 1, 1, 1, capacity]: 0 for the cache rows a sequence holds, -inf for the rest. */
  pastBias: Value;
  /** float [S, S]: 0 where a new row may see another new row (j <= i), -inf after it. */
  causalBias: Value;
  cosCache: Value;
  sinCache: Value;
}

/**
 * Runs of this many query rows or more (a prompt, a follow-up's prompt, a video's frame rows) go
 * through GroupQueryAttention, whose kernel computes each head's scores in one buffer in place;
 * rowsAttention's concatenated, masked and sliced score tensors cost more than its copy of the
 * cache once a run has a few dozen rows (bench/RESULTS.md, "Long contexts": the crossover table).
 */
export const PROMPT_KERNEL_MIN_ROWS = 33;

/**
 * What GroupQueryAttention is told instead of the biases, derived from the position ids of a run of
 * one sequence [1, S]. It assumes what the cache strategies do: the held rows are the cache's first
 * rows (past_bias is not read) and the new rows' positions run on from them, so the last position
 * + 1 is the total length and the new rows land at total - S .. total - 1.
 */
export interface PromptAttentionInputs {
  /** bool scalar: a run of one sequence with at least the minimum rows. */
  isPrompt: Value;
  /** int32 [1]: total length - 1. */
  seqlensK: Value;
  /** int32 scalar: the total length. */
  totalLength: Value;
  /** int64 [1] each: where the new rows are in GroupQueryAttention's present, and one past them. */
  firstRow: Value;
  endRow: Value;
}

/** `minRows` int64 [1]: the fewest rows that take the prompt kernel (a graph input). */
export function promptAttentionInputs(g: Graph, positionIds: Value, minRows: Value): PromptAttentionInputs {
  const dims = g.shape(positionIds); // [B, S]
  const dim = (i: number) => g.slice(dims, [i], [i + 1], [0]);
  const isPrompt = g.reshape(g.and(g.equal(dim(0), g.int64s([1])), g.greater(dim(1), g.sub(minRows, g.int64s([1])))), []);
  const endRow = g.add(g.slice(g.reshape(positionIds, [-1]), [-1], [INT64_MAX], [0]), g.int64s([1]));
  const seqlensK = g.cast(g.sub(endRow, g.int64s([1])), 'int32');
  return { isPrompt, seqlensK, totalLength: g.reshape(g.cast(endRow, 'int32'), []), firstRow: g.sub(endRow, dim(1)), endRow };
}

/**
 * Attention of S new rows over a KV cache the graph only reads, for runtimes whose fetched
 * outputs cost a copy each (onnxruntime-node's binding copies every output into a new buffer;
 * GroupQueryAttention given a present buffer other than its past copies the whole past into it).
 * The cache [B, kvHeads, capacity, headDim] is an input, never an output: the graph returns the
 * new rows [B, kvHeads, S, headDim] and the caller writes them into the cache. Per kv head, the G =
 * heads / kvHeads query heads that share it are stacked as rows of one matrix product:
 *
 *   q, k   = rope(q, positions), rope(k, positions)
 *   scores = [q K_cache^T + pastBias, q k^T + causalBias] / sqrt(headDim)   [B, kv, G, S, capacity + S]
 *   out    = softmax(scores) @ [V_cache; v]
 *
 * The capacity rows a sequence does not hold are masked (pastBias), so they cost reading but never
 * count; the caller keeps the capacity close to the length.
 */
export function rowsAttention(g: Graph, c: LlamaConfig, io: RowsAttentionInputs, pastKey: Value, pastValue: Value, q: Value, k: Value, v: Value): { out: Value; newKey: Value; newValue: Value } {
  const N = c.numHeads;
  const K = c.numKvHeads;
  const G = N / K;
  const D = c.headDim;
  const qr = g.rotaryEmbedding(q, io.positionIds, io.cosCache, io.sinCache, { numHeads: N }); // [B, S, N*D]
  const kr = g.rotaryEmbedding(k, io.positionIds, io.cosCache, io.sinCache, { numHeads: K }); // [B, S, K*D]
  // Head h = kv * G + group (HF's repeat_kv): [B, S, K, G, D] -> [B, K, G, S, D] -> rows [B, K, G*S, D].
  const qRows = g.reshape(g.transpose(g.reshape(qr, [0, 0, K, G, D]), [0, 2, 3, 1, 4]), [0, 0, -1, D]);
  const newKey = g.transpose(g.reshape(kr, [0, 0, K, D]), [0, 2, 1, 3]); // [B, K, S, D]
  const newValue = g.transpose(g.reshape(v, [0, 0, K, D]), [0, 2, 1, 3]);

  const scale = 1 / Math.sqrt(D);
  const scoresOf = (keys: Value) => g.op('FusedMatMul', [qRows, keys], { transB: 1, alpha: attr.float(scale) }, { domain: 'com.microsoft' }); // [B, K, G*S, T]
  // [B, K, G*S, T] -> [B, K, G, S, T]: the last dim is only known at run time, so the shape is built.
  const split = (x: Value) => g.reshape(x, g.concat([g.int64s([0, 0, G, -1]), g.op('Shape', [x], { start: 3 })], 0));
  const past = g.add(split(scoresOf(pastKey)), io.pastBias);
  const fresh = g.add(split(scoresOf(newKey)), io.causalBias);
  const probs = g.softmax(g.concat([past, fresh], -1), -1); // [B, K, G, S, capacity + S]

  const capacity = g.op('Shape', [pastKey], { start: 2, end: 3 });
  const merge = (x: Value) => g.reshape(x, g.concat([g.int64s([0, 0, -1]), g.op('Shape', [x], { start: 4 })], 0)); // [B, K, G*S, T]
  const pPast = merge(g.op('Slice', [probs, g.int64s([0]), capacity, g.int64s([-1])]));
  const pNew = merge(g.op('Slice', [probs, capacity, g.int64s([INT64_MAX]), g.int64s([-1])]));
  const rows = g.add(g.matMul(pPast, pastValue), g.matMul(pNew, newValue)); // [B, K, G*S, D]
  // [B, K, G, S, D] -> [B, S, K, G, D] -> [B, S, N*D]
  const out = g.reshape(g.transpose(g.reshape(rows, [0, 0, G, -1, D]), [0, 3, 1, 2, 4]), [0, 0, N * D]);
  return { out, newKey, newValue };
}

/**
 * The same attention for a run of many new rows of one sequence, through onnxruntime's
 * GroupQueryAttention: RoPE inside the op at positions total-S .. total-1, causal over the held and
 * new rows. The op returns the cache with the new rows written after the held ones (a copy of the
 * held rows, which a long run amortizes); the new rows are sliced back out, so both kernels have the
 * same outputs.
 */
export function promptAttention(g: Graph, c: LlamaConfig, io: Pick<RowsAttentionInputs, 'cosCache' | 'sinCache'> & PromptAttentionInputs, pastKey: Value, pastValue: Value, q: Value, k: Value, v: Value): { out: Value; newKey: Value; newValue: Value } {
  const [out, presentKey, presentValue] = g.groupQueryAttention(
    { query: q, key: k, value: v, pastKey, pastValue, seqlensK: io.seqlensK, totalSequenceLength: io.totalLength, cosCache: io.cosCache, sinCache: io.sinCache },
    { numHeads: c.numHeads, kvNumHeads: c.numKvHeads },
  );
  const newRows = (present: Value) => g.op('Slice', [present, io.firstRow, io.endRow, g.int64s([2])]); // [1, K, S, D]
  return { out, newKey: newRows(presentKey), newValue: newRows(presentValue) };
}
