// What a loaded model is made of, and what its inputs become: the types the conversation and the
// platform entries share (kept apart from LlavaMini so the conversation need not import the class).
import type { ProgressCallback } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import type { LlamaModel, Tokenizer } from '@llava-mini/llm';
import type { LlmOpenings } from './llm-openings.js';
import type { VisionPipeline } from './vision.js';

/**
 * Decoded visual input: still images, or a video whose frames arrive one at a time (already sampled
 * at the reference's frame indices) with their number known up front. A video's `key`, where the
 * resolver can tell, names its sampled frames by the source's content (and the sampling), so a
 * video seen before is read from the picture cache without decoding: `frames` is then not read.
 */
export type Pictures = { kind: 'images'; images: RGB8[] } | { kind: 'video'; count: number; frames: AsyncIterable<RGB8>; key?: string };

export interface ResolveInputOptions {
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
  /** How many frames the video `key` has when the model holds every one of them (VisionPipeline.knownVideo): then nothing needs probing or decoding. */
  knownVideo?: (key: string) => number | undefined;
}

/** Turns what the caller passed (a path, bytes, ImageData, a video...) into pictures; platform-specific. */
export type InputResolver<I> = (input: I, options: ResolveInputOptions) => Promise<Pictures>;

/** The loaded stages: sessions and weights, shared by every conversation. */
export interface ModelParts<I = unknown> {
  config: Record<string, unknown>;
  tokenizer: Tokenizer;
  vision: VisionPipeline;
  llm: LlamaModel;
  /** Video prompts' opening rows held in the LLM's cache, shared by new conversations about the same video. */
  openings: LlmOpenings;
  resolveInput: InputResolver<I>;
  dispose: () => Promise<void>;
}
