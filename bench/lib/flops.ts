/**
 * Analytic FLOPs of each stage, from the config. One multiply-add is 2 FLOPs; norms, activations,
 * softmax and RoPE are left out (they are O(n*width), not O(n*width^2)). Attention counts the
 * query-key pairs a causal mask keeps: n new rows over p cached ones see n*p + n(n+1)/2 keys in all,
 * and each pair costs 2*head_dim for Q.K and 2*head_dim for A.V per query head.
 *
 *   linear   (n rows, in -> out)      2 n in out
 *   attention (pairs, heads, dh)      4 pairs heads dh
 *   LLaMA block over n rows           2 n (2 H Hq dh + 2 H Hkv dh + 3 H F) + attention
 *   CLIP block over T tokens          2 T (4 D^2 + 2 D F) + 4 T^2 D   (full attention)
 *   patch embedding                   2 P (3 p^2) D
 *   projector (mlp2x_gelu)            2 n (D H + H^2)
 *   compressor (Q queries, M keys)    2 Q D^2 + 4 M D^2 + 4 Q M D + 2 Q D^2
 *   LM head                           2 H V for the one row whose logits are fetched
 */
import type { RefLlamaConfig } from '@llava-mini/reference';

/** What the formulas need of a LLaMA config: the reference's reading of config.json, which knows nothing of the runtime. */
export type LlmShape = Pick<RefLlamaConfig, 'hidden' | 'intermediate' | 'layers' | 'heads' | 'kvHeads' | 'headDim' | 'vocab'>;

export interface VisionShape {
  hidden: number;
  intermediate: number;
  /** Blocks run (select_layer -2: all but the last). */
  blocks: number;
  patches: number;
  patchSize: number;
}

export interface StageFlops {
  encoder: number;
  projector: number;
  compressor: number;
  prefusion: number;
  llm: number;
}

export const total = (s: StageFlops): number => s.encoder + s.projector + s.compressor + s.prefusion + s.llm;

export const linearFlops = (n: number, inF: number, outF: number): number => 2 * n * inF * outF;
export const causalPairs = (n: number, past = 0): number => n * past + (n * (n + 1)) / 2;

/** `layers` LLaMA blocks over n new rows after `past` cached ones. */
export function llamaBlocks(c: LlmShape, n: number, layers: number, past = 0): number {
  const H = c.hidden;
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const weights = linearFlops(n, H, q) * 2 + linearFlops(n, H, kv) * 2 + linearFlops(n, H, c.intermediate) * 3;
  return layers * (weights + 4 * causalPairs(n, past) * c.heads * c.headDim);
}

/** LLM prefill of n rows: every block, plus the LM head on the last row. */
export const llmPrefill = (c: LlmShape, n: number): number => llamaBlocks(c, n, c.layers) + linearFlops(1, c.hidden, c.vocab);

/** One decode step at `past` cached positions. */
export const llmDecode = (c: LlmShape, past: number): number => llamaBlocks(c, 1, c.layers, past) + linearFlops(1, c.hidden, c.vocab);

export function encoder(v: VisionShape): number {
  const T = v.patches + 1; // with CLS
  const D = v.hidden;
  const block = 2 * T * (4 * D * D + 2 * D * v.intermediate) + 4 * T * T * D;
  return linearFlops(v.patches, 3 * v.patchSize * v.patchSize, D) + v.blocks * block;
}

export const projector = (n: number, D: number, H: number): number => linearFlops(n, D, H) + linearFlops(n, H, H);

export function compressor(queries: number, keys: number, D: number): number {
  return linearFlops(queries, D, D) * 2 + linearFlops(keys, D, D) * 2 + 4 * queries * keys * D;
}

/** LLaVA-Mini: CLIP, compressor, projector (inside pre-fusion: 576 + C^2 rows), pre-fusion blocks over 576 + C^2 + L rows, LLM over C^2 + L - 1. */
export function llavaMini(llm: LlmShape, v: VisionShape, prefusionLayers: number, queries: number, promptLength: number): StageFlops {
  return {
    encoder: encoder(v),
    compressor: compressor(queries, v.patches, v.hidden),
    projector: projector(v.patches + queries, v.hidden, llm.hidden),
    prefusion: llamaBlocks(llm, v.patches + queries + promptLength, prefusionLayers),
    llm: llmPrefill(llm, queries + promptLength - 1),
  };
}

/** LLaVA-v1.5 style: CLIP, projector over the 576 patches, LLM over 576 + L - 1 rows (the placeholder replaced). */
export function llavaV15(llm: LlmShape, v: VisionShape, promptLength: number): StageFlops {
  return {
    encoder: encoder(v),
    compressor: 0,
    projector: projector(v.patches, v.hidden, llm.hidden),
    prefusion: 0,
    llm: llmPrefill(llm, v.patches + promptLength - 1),
  };
}

/** KV-cache bytes per LLM input row: K and V, every layer, every KV head. */
export const kvBytesPerToken = (c: LlmShape, bytesPerValue: number): number => 2 * c.layers * c.kvHeads * c.headDim * bytesPerValue;
