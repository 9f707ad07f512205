// What each stage of a loaded model computes for one picture and question, gathered the same way in
// Node (webgpu-node.test.ts) and in the browser (browser-page.ts), so both can be held to the
// plain-TypeScript reference stage by stage rather than only by their final tokens.
import type { RGB8 } from '@llava-mini/encoder';
// The built package, as both the Node tests and the bundled browser page load it.
import { toFloat32 } from '@llava-mini/core';
import type { ModelParts } from '@llava-mini/pipeline';
import { embeddingIds, llmInput } from '@llava-mini/prefusion';

export interface StageOutputs {
  /** Prompt ids with -200 at the placeholder (as the model's tokenizer step built them). */
  promptIds: number[];
  /** CLIP features [M, D] that pre-fusion sees (HD: stitched grid, then the global image). */
  imageFeatures: number[];
  /** Compressor output [C*C, D]. */
  compressed: number[];
  visionTokens: number[];
  fusedText: number[];
  /** Logits after the prompt, then after each of `forcedIds` (teacher forcing: every backend decodes the same ids). */
  logits: number[][];
}

/**
 * Run the stages one by one on `picture` (decoded pixels). `promptIds` come from a first `ask` on
 * the same model (so the chat template is the model's own); `forcedIds` are fed as decode steps.
 */
export async function stageOutputs(model: { parts: ModelParts<never> }, picture: RGB8, promptIds: number[], forcedIds: number[]): Promise<StageOutputs> {
  const { vision, llm } = model.parts;
  // Straight through the stages: encode() bypasses the picture cache, a fresh sequence the conversations.
  const [features] = (await vision.encode([picture], false)).features;
  const textEmbeds = toFloat32(await llm.embed(embeddingIds(promptIds)));
  const fused = await vision.fuse(textEmbeds, promptIds, [features]);
  const sequence = llm.sequence();
  const logits: number[][] = [];
  try {
    logits.push(Array.from(await sequence.prefill(llmInput(promptIds, fused, llm.dtype))));
    for (const id of forcedIds) logits.push(Array.from(await sequence.step(id)));
  } finally {
    sequence.dispose();
  }
  return {
    promptIds,
    imageFeatures: Array.from(features.imageFeatures),
    compressed: Array.from(features.compressed),
    visionTokens: Array.from(fused.visionTokens),
    fusedText: Array.from(fused.fusedText),
    logits,
  };
}
