// What each stage of a loaded model computes for one picture and question, gathered the same way in
// Node (webgpu-node.test.ts) and in the browser (browser-page.ts), so both can be held to the
// plain-TypeScript reference stage by stage rather than only by their final tokens.
import type { RGB8 } from '@llava-mini/encoder';
// The built package, as both the Node tests and the bundled browser page load it.
import { type LlavaMiniModel, zeroTimings } from '@llava-mini/pipeline';

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
export async function stageOutputs(model: LlavaMiniModel, picture: RGB8, promptIds: number[], forcedIds: number[]): Promise<StageOutputs> {
  const t = zeroTimings();
  const [features] = await model.vision.features([picture], false, t);
  const fused = await model.vision.fuse(promptIds, [features], t);
  const llm = model.parts.llm;
  llm.reset();
  const logits = [Array.from(await llm.prefill(model.vision.assemble(promptIds, fused)))];
  for (const id of forcedIds) logits.push(Array.from(await llm.step(id)));
  llm.reset();
  return {
    promptIds,
    imageFeatures: Array.from(features.imageFeatures),
    compressed: Array.from(features.compressed),
    visionTokens: Array.from(fused.visionTokens),
    fusedText: Array.from(fused.fusedText),
    logits,
  };
}
