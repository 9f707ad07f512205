// The plain-TypeScript reference (@llava-mini/reference) of what stageOutputs() gathers, for a
// standard-resolution checkpoint, and the comparison both WebGPU tests use.
import { Checkpoint } from '@llava-mini/core/node';
import type { PixelBatch } from '@llava-mini/encoder';
import { maxAbsDiff } from '@llava-mini/core/testing';
import { cachedFloat32, RefLlama, refClipFeatures, refCompressor, refLlamaConfig, refPrefusion } from '@llava-mini/reference';
import { expect } from 'vitest';
import type { StageOutputs } from './stage-outputs.js';

export function referenceStages(ckpt: string, config: Record<string, any>, pixels: PixelBatch, promptIds: number[], forcedIds: number[]): StageOutputs {
  const cp = Checkpoint.open(ckpt);
  try {
    const src = cachedFloat32(cp);
    const imageFeatures = refClipFeatures(src, config.vision_config, pixels.data);
    const compressed = refCompressor(src, config, imageFeatures);
    const llama = new RefLlama(src, refLlamaConfig(config));
    const H = llama.config.hidden;
    const textEmbeds = llama.embed(promptIds.map((id) => Math.max(id, 0)));
    const fused = refPrefusion(src, config, { imageFeatures, compressed, textEmbeds, ids: promptIds });
    const p = promptIds.indexOf(-200);
    const embeds = new Float32Array(fused.fusedText.length - H + fused.visionTokens.length);
    embeds.set(fused.fusedText.subarray(0, p * H));
    embeds.set(fused.visionTokens, p * H);
    embeds.set(fused.fusedText.subarray((p + 1) * H), p * H + fused.visionTokens.length);
    const logits = [Array.from(llama.step(embeds))];
    for (const id of forcedIds) logits.push(Array.from(llama.step(llama.embed([id]))));
    return {
      promptIds,
      imageFeatures: Array.from(imageFeatures),
      compressed: Array.from(compressed),
      visionTokens: Array.from(fused.visionTokens),
      fusedText: Array.from(fused.fusedText),
      logits,
    };
  } finally {
    cp.close();
  }
}

/** Largest difference relative to the reference's largest magnitude (the stages' values reach ~100 at std 0.3). */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  return maxAbsDiff(got, want) / (scale || 1);
}

/** Every stage within `tolerance` (relative, see relativeError) of the reference; returns the errors for the log. */
export function expectStagesClose(got: StageOutputs, want: StageOutputs, tolerance: number): Record<string, string> {
  expect(got.promptIds).toEqual(want.promptIds);
  const errors: Record<string, number> = {
    encoder: relativeError(got.imageFeatures, want.imageFeatures),
    compressor: relativeError(got.compressed, want.compressed),
    'prefusion vision tokens': relativeError(got.visionTokens, want.visionTokens),
    'prefusion text': relativeError(got.fusedText, want.fusedText),
    'llm prefill logits': relativeError(got.logits[0], want.logits[0]),
  };
  expect(got.logits.length).toBe(want.logits.length);
  for (let i = 1; i < want.logits.length; i++) errors[`llm decode ${i} logits`] = relativeError(got.logits[i], want.logits[i]);
  for (const [stage, e] of Object.entries(errors)) expect(e, `${stage}: relative error ${e.toExponential(2)} > ${tolerance}`).toBeLessThanOrEqual(tolerance);
  return Object.fromEntries(Object.entries(errors).map(([k, v]) => [k, v.toExponential(1)]));
}
