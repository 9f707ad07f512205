// What a loaded model is made of, and what its inputs become: the types the conversation and the
// platform entries share (kept apart from LlavaMini so the conversation need not import the class).
import type { ProgressCallback } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import type { LlamaModel, Tokenizer } from '@llava-mini/llm';
import type { VisionPipeline } from './vision.js';

/**
 * Decoded visual input: still images, or a video whose frames arrive one at a time (already sampled
 * at the reference's frame indices) with their number known up front.
 */
export type Pictures = { kind: 'images'; images: RGB8[] } | { kind: 'video'; count: number; frames: AsyncIterable<RGB8> };

/** Turns what the caller passed (a path, bytes, ImageData, a video...) into pictures; platform-specific. */
export type InputResolver<I> = (input: I, options: { signal?: AbortSignal; onProgress?: ProgressCallback }) => Promise<Pictures>;

/** The loaded stages: sessions and weights, shared by every conversation. */
export interface ModelParts<I = unknown> {
  config: Record<string, unknown>;
  tokenizer: Tokenizer;
  vision: VisionPipeline;
  llm: LlamaModel;
  resolveInput: InputResolver<I>;
  dispose: () => Promise<void>;
}
