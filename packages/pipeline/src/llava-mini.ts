import { AbortError, InvalidOptionError, type ProgressCallback, PromptTooLongError } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import {
  type AskOptions as LlmAskOptions,
  type ChatTurn,
  type GeneratedToken,
  type GenerationResult,
  type Generation,
  type LlamaModel,
  LlavaChat,
  type LlavaPromptOptions,
  type Tokenizer,
} from '@llava-mini/llm';
import type { PrefusionImage } from '@llava-mini/prefusion';
import { Completions } from './completions.js';
import { type StageTimings, type VisionPipeline, zeroTimings } from './vision.js';

/**
 * Decoded visual input: still images, or a video whose frames arrive one at a time (already sampled
 * at the reference's frame indices) with their number known up front.
 */
export type Pictures = { kind: 'images'; images: RGB8[] } | { kind: 'video'; count: number; frames: AsyncIterable<RGB8> };

/** Turns whatever the caller passed (a path, bytes, ImageData, a video...) into pictures; platform-specific. */
export type InputResolver = (input: unknown, options: { signal?: AbortSignal; onProgress?: ProgressCallback }) => Promise<Pictures>;

export interface AskOptions extends Omit<LlmAskOptions, 'embed'>, Omit<LlavaPromptOptions, 'history' | 'image'> {
  onProgress?: ProgressCallback;
}

/** Options of a conversation: its prompt (system message), and earlier turns to start from. */
export interface ChatOptions extends Omit<AskOptions, keyof LlmAskOptions> {
  history?: readonly ChatTurn[];
}

export interface AskTimings extends StageTimings {
  /** Decoding and preprocessing the input (image decode, video frame decode). */
  inputMs: number;
  /** From the call until the first generated token. */
  timeToFirstTokenMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  totalMs: number;
}

export interface AskResult extends GenerationResult {
  /**
   * The prompt ids this turn ran, as the tokenizer step built them: the whole prompt with
   * IMAGE_TOKEN_INDEX (-200) at the placeholder on a first turn, the new text on a follow-up.
   */
  promptTokenIds: number[];
  /** Rows the LLM received for this turn (text with vision tokens spliced in). */
  llmInputTokens: number;
  timings: AskTimings;
}

/** A streamed answer: iterate it for tokens, or await `done()` for the whole result. */
export interface Answer extends AsyncIterable<GeneratedToken> {
  done(): Promise<AskResult>;
}

export interface ModelParts {
  config: Record<string, unknown>;
  tokenizer: Tokenizer;
  vision: VisionPipeline;
  llm: LlamaModel;
  resolveInput: InputResolver;
  dispose: () => Promise<void>;
}

const now = (): number => globalThis.performance.now();

/**
 * LLaVA-Mini: image and video question answering with one vision token per picture. Platform
 * entries add `fromPretrained` (Node: a folder; browser: a URL); the stages can also be composed
 * by hand and passed in as `ModelParts`.
 */
export class LlavaMiniModel {
  /**
   * `chat(input?)` starts a conversation about `input` (or text only when input is undefined).
   * Follow-up questions reuse the KV cache and the pictures' cached features: nothing is encoded
   * twice. `chat.completions.create({ messages, stream, ... })` is OpenAI's API over it.
   */
  readonly chat: ((input?: unknown, options?: ChatOptions) => Conversation) & { completions: Completions };

  constructor(readonly parts: ModelParts) {
    const chat = (input?: unknown, options: ChatOptions = {}) => new Conversation(this.parts, input, options);
    this.chat = Object.assign(chat, { completions: new Completions(chat) });
  }

  get vision(): VisionPipeline {
    return this.parts.vision;
  }

  /** Answer one question about `input` (an image, several images, or a video), from a fresh context. */
  ask(input: unknown, question: string, options: AskOptions = {}): Answer {
    return this.chat(input, options).ask(question, options);
  }

  dispose(): Promise<void> {
    return this.parts.dispose();
  }
}

/** One conversation; created by `LlavaMiniModel.chat()`. Turns must not overlap. */
export class Conversation {
  private readonly chat: LlavaChat;
  /** The images' features, once the first turn has encoded them (video frames are streamed, not kept). */
  private features?: PrefusionImage[];

  constructor(
    private readonly parts: ModelParts,
    private readonly input: unknown,
    promptOptions: Omit<LlavaPromptOptions, 'image'>,
  ) {
    this.chat = new LlavaChat(parts.llm, parts.tokenizer, { ...promptOptions, image: input !== undefined });
  }

  ask(question: string, options: AskOptions = {}): Answer {
    const started = now();
    const timings: StageTimings & { inputMs: number } = { ...zeroTimings(), inputMs: 0 };
    const { vision } = this.parts;
    let promptTokenIds: number[] = [];
    let llmInputTokens = 0;
    const embed = async (ids: number[]) => {
      promptTokenIds = ids;
      if (this.input === undefined) {
        llmInputTokens = ids.length;
        return this.parts.llm.embed(ids);
      }
      const pictures = await this.pictures(ids, options, timings);
      const fused = await vision.fuse(ids, pictures, timings);
      const embeds = vision.assemble(ids, fused);
      llmInputTokens = embeds.dims[1];
      return embeds;
    };
    const generation: Generation = this.chat.ask(question, { ...options, embed });
    const result = async (): Promise<AskResult> => {
      const r = await generation.done();
      return {
        ...r,
        promptTokenIds,
        llmInputTokens,
        timings: {
          ...timings,
          timeToFirstTokenMs: r.stats.timeToFirstTokenMs,
          prefillTokensPerSecond: r.stats.prefillTokensPerSecond,
          decodeTokensPerSecond: r.stats.decodeTokensPerSecond,
          totalMs: now() - started,
        },
      };
    };
    return { [Symbol.asyncIterator]: () => generation[Symbol.asyncIterator](), done: result };
  }

  /**
   * The features of this conversation's pictures. Images are decoded and encoded on the first turn
   * and kept for follow-ups. A video's frames are streamed: decoded, encoded and handed to pre-fusion
   * a batch at a time and then dropped, so memory holds one batch of frames whatever the video's
   * length (a follow-up reads the video again).
   */
  private async pictures(ids: readonly number[], options: AskOptions, timings: StageTimings & { inputMs: number }): Promise<AsyncIterable<PrefusionImage> | PrefusionImage[]> {
    if (this.features) return this.features;
    const t0 = now();
    const pictures = await this.parts.resolveInput(this.input, { signal: options.signal, onProgress: options.onProgress });
    const count = pictures.kind === 'images' ? pictures.images.length : pictures.count;
    if (count === 0) throw new InvalidOptionError('no pictures to look at');
    this.checkLength(ids, count);
    timings.inputMs += now() - t0;
    if (pictures.kind === 'images') {
      this.features = await this.parts.vision.features(pictures.images, false, timings);
      return this.features;
    }
    return this.streamFrames(pictures.frames, count, options, timings);
  }

  private async *streamFrames(frames: AsyncIterable<RGB8>, count: number, options: AskOptions, timings: StageTimings & { inputMs: number }): AsyncGenerator<PrefusionImage> {
    const { vision } = this.parts;
    let batch: RGB8[] = [];
    let done = 0;
    const flush = async () => {
      const features = await vision.features(batch, true, timings);
      done += batch.length;
      batch = [];
      options.onProgress?.({ task: 'video', done, total: count, unit: 'frames' });
      return features;
    };
    // Time spent waiting for the next decoded frame counts as input time.
    let waitStart = now();
    for await (const img of frames) {
      timings.inputMs += now() - waitStart;
      if (options.signal?.aborted) throw new AbortError('reading the video was aborted');
      batch.push(img);
      if (batch.length >= vision.batchSize) yield* await flush();
      waitStart = now();
    }
    if (batch.length) yield* await flush();
  }

  /** Refuse before any encoding when the prompt with its vision tokens cannot fit the context. */
  private checkLength(ids: readonly number[], pictures: number): void {
    const tokensPerPicture = this.parts.vision.compressedTokens;
    const rows = this.parts.llm.length + ids.length - 1 + pictures * tokensPerPicture;
    const configLimit = this.parts.config.tokenizer_model_max_length;
    const limit = Math.min(this.parts.llm.maxSequence, typeof configLimit === 'number' ? configLimit : Infinity);
    if (rows > limit) throw new PromptTooLongError(rows, limit, `the prompt with ${pictures} picture(s) of ${tokensPerPicture} vision token(s)`);
  }
}
