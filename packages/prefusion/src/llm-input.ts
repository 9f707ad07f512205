// The two ends of pre-fusion on the prompt side (spec §3.2, §4.5): which ids its text embeddings
// look up, and how its outputs become the LLM's input. Written once here so the pipeline, the
// benches and the tests build the same rows.
import { castFloat, InvalidOptionError, type Tensor, tensor } from '@llava-mini/core';
import { IMAGE_TOKEN_INDEX } from './prompt.js';

/** The ids whose embeddings are pre-fusion's text input: the placeholder looks up token 0 (spec §3.2). */
export function embeddingIds(ids: readonly number[]): number[] {
  return ids.map((id) => Math.max(id, 0));
}

/**
 * The LLM input [1, rows, H] in `dtype` (spec §4.5): the text rows before the placeholder, the vision
 * tokens, the text rows after it; the placeholder's own row is dropped. Without a placeholder the
 * text is used whole. `text` is [L, H] for the L prompt ids (pre-fusion's fused text, or plain
 * embeddings for a LLaVA-v1.5-style splice), `visionTokens` [V, H].
 */
export function llmInput(ids: readonly number[], { fusedText: text, visionTokens }: { fusedText: Float32Array; visionTokens: Float32Array }, dtype: 'float32' | 'float16' = 'float32'): Tensor {
  const H = text.length / ids.length;
  if (!Number.isInteger(H) || H === 0) throw new InvalidOptionError(`the text has ${text.length} values, not rows for ${ids.length} ids`);
  const p = ids.indexOf(IMAGE_TOKEN_INDEX);
  if (p >= 0 && ids.indexOf(IMAGE_TOKEN_INDEX, p + 1) >= 0) throw new InvalidOptionError('a prompt may hold one <image> placeholder');
  if (p >= 0 && (visionTokens.length === 0 || visionTokens.length % H !== 0)) throw new InvalidOptionError(`the vision tokens have ${visionTokens.length} values, not rows of width ${H}`);
  const out = p < 0 ? text : new Float32Array(text.length - H + visionTokens.length);
  if (p >= 0) {
    out.set(text.subarray(0, p * H));
    out.set(visionTokens, p * H);
    out.set(text.subarray((p + 1) * H), p * H + visionTokens.length);
  }
  return castFloat(tensor('float32', [1, out.length / H, H], out), dtype);
}
