// One conversation's turn, start to end: tokens -> pictures -> fusion -> splice -> prefill -> decode.
// The conversation owns everything that is not weights: its KV cache (a Sequence of the LLM), its
// pictures' features, its history. The loaded model (LlavaMini) only lends it sessions.
import { AbortError, castFloat, DisposedError, InvalidOptionError, now, type ProgressCallback, PromptTooLongError, type Tensor, tensor, toFloat32 } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import {
  buildLlavaPrompt,
  type ChatTurn,
  checkGenerateOptions,
  generate,
  type GenerateOptions,
  type GeneratedToken,
  type GenerationResult,
  IMAGE_TOKEN_INDEX,
  type LlavaPromptOptions,
  type Sequence,
} from '@llava-mini/llm';
import type { PicturePrefix, PrefusionImage, PrefusionPicture, PrefusionResult } from '@llava-mini/prefusion';
import { Answer } from './answer.js';
import type { ModelParts } from './llava-mini.js';

/** How a conversation's prompt is rendered (fixed for it), and earlier turns to start from (a stateless API replaying a conversation: the first ask runs them all). */
export type ChatOptions = Omit<LlavaPromptOptions, 'image'>;

/** Options of one question: generation (sampling, limits, stop, signal, onToken) and progress. */
export interface AskOptions extends Omit<GenerateOptions, 'tokenizer'> {
  onProgress?: ProgressCallback;
}

/** Milliseconds spent in each stage of one turn. */
export interface StageTimings {
  /** Decoding and preprocessing the input (image decode, video frame decode). */
  inputMs: number;
  encoderMs: number;
  compressorMs: number;
  embedMs: number;
  prefusionMs: number;
}

export interface AskTimings extends StageTimings {
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

/** A piece of the KV cache: the text it holds, its ids, its rows, and whether they went through fusion. */
interface Segment {
  text: string;
  ids: number[];
  positions: number;
  fused: boolean;
}

const positionsOf = (segments: readonly Segment[]): number => segments.reduce((n, s) => n + s.positions, 0);

/**
 * The LLM input (spec §4.5): fused text before the placeholder, the vision tokens, fused text after
 * it; the placeholder row itself is dropped. Without a placeholder the fused text is used whole.
 */
export function splice(ids: readonly number[], fused: PrefusionResult, hiddenSize: number, dtype: 'float32' | 'float16'): Tensor {
  const H = hiddenSize;
  const p = ids.indexOf(IMAGE_TOKEN_INDEX);
  if (p >= 0 && ids.indexOf(IMAGE_TOKEN_INDEX, p + 1) >= 0) throw new InvalidOptionError('a prompt may hold one <image> placeholder');
  const text = fused.fusedText;
  const out = p < 0 ? text : new Float32Array(text.length - H + fused.visionTokens.length);
  if (p >= 0) {
    out.set(text.subarray(0, p * H));
    out.set(fused.visionTokens, p * H);
    out.set(text.subarray((p + 1) * H), p * H + fused.visionTokens.length);
  }
  return castFloat(tensor('float32', [1, out.length / H, H], out), dtype);
}

/** Ask the one question a conversation was made for; the conversation is freed when the answer ends. */
export function askOnce(conversation: Pick<Conversation, 'ask' | 'dispose'>, question: string, options: AskOptions): Answer<AskResult> {
  try {
    const answer = conversation.ask(question, options);
    void answer.done().finally(() => conversation.dispose()).catch(() => {});
    return answer;
  } catch (err) {
    conversation.dispose();
    throw err;
  }
}

/**
 * A conversation about one input (images, a video, or none); made by `LlavaMini.chat()`. A
 * follow-up question does not re-run the conversation: the prompt is rendered with the history,
 * the part of the KV cache whose text is a prefix of it is kept, and only the rest is run. Turns
 * asked while one is running wait for it (in order). If the model's KV cap evicted this
 * conversation's cache while it was idle, the next turn first recomputes it, segment by segment,
 * exactly as it was built.
 */
export class Conversation<I = unknown> {
  private readonly sequence: Sequence;
  private segments: Segment[] = [];
  private readonly turns: ChatTurn[];
  private readonly options: Omit<ChatOptions, 'history'>;
  /**
   * The images, once the first turn has looked at them: each one's pre-fusion prefix once a pass
   * has made it (until then its features), so a follow-up runs only its text rows; kept here even
   * if the model's picture cache lets it go. A video's frames are streamed, not kept.
   */
  private features?: PrefusionPicture[];
  private last: Promise<unknown> = Promise.resolve();
  private readonly disposal = new AbortController();

  constructor(
    private readonly parts: ModelParts<I>,
    private readonly input: I | undefined,
    { history, ...options }: ChatOptions = {},
  ) {
    this.turns = [...(history ?? [])];
    this.options = options;
    this.sequence = parts.llm.sequence();
  }

  get history(): readonly ChatTurn[] {
    return this.turns;
  }

  /** The ids whose positions the KV cache holds (IMAGE_TOKEN_INDEX where vision tokens went). */
  get context(): number[] {
    return this.segments.flatMap((s) => s.ids);
  }

  /** Bytes of this conversation's KV cache now (0 after dispose() or an eviction). */
  get cacheBytes(): number {
    return this.sequence.cacheBytes;
  }

  /** Ask the next question; iterate the answer for tokens, or `await answer.done()`. */
  ask(question: string, options: AskOptions = {}): Answer<AskResult> {
    if (this.disposal.signal.aborted) throw new DisposedError('the conversation');
    if (typeof question !== 'string') throw new InvalidOptionError(`the question must be a string, got ${typeof question}`);
    checkGenerateOptions({ ...options, tokenizer: this.parts.tokenizer });
    const previous = this.last;
    const answer = new Answer<AskResult>(async (emit, cancel) => {
      await previous.catch(() => {});
      return this.turn(question, options, emit, cancel);
    });
    this.last = answer.done();
    return answer;
  }

  /** Free the KV cache and the pictures' features now; a running turn stops with AbortError. */
  dispose(): void {
    if (this.disposal.signal.aborted) return;
    this.disposal.abort(new AbortError('the conversation was disposed'));
    this.sequence.dispose();
    this.features = undefined;
    this.segments = [];
  }

  private async turn(question: string, options: AskOptions, emit: (t: GeneratedToken) => void, cancel: AbortSignal): Promise<AskResult> {
    const started = now();
    if (this.disposal.signal.aborted) throw new DisposedError('the conversation');
    const signal = AbortSignal.any([cancel, this.disposal.signal, ...(options.signal ? [options.signal] : [])]);
    const { tokenizer, llm } = this.parts;
    const t: StageTimings = { inputMs: 0, encoderMs: 0, compressorMs: 0, embedMs: 0, prefusionMs: 0 };
    const unhold = this.sequence.hold();
    try {
      // The cap evicted this idle conversation's cache: rebuild it first.
      if (this.sequence.length !== positionsOf(this.segments)) await this.recompute(signal, t, options.onProgress);

      // 1. Tokens: the prompt with the history; keep the cached segments whose text is a prefix of it.
      const prompt = buildLlavaPrompt(tokenizer, question, { ...this.options, image: this.input !== undefined, history: this.turns });
      const keep = this.reusableSegments(prompt.text);
      const keptText = this.segments.slice(0, keep).map((s) => s.text).join('');
      const newText = prompt.text.slice(keptText.length);
      // A fresh prompt goes in whole (with its image placeholder); a follow-up only as the text past the cache.
      const ids = keep === 0 ? prompt.ids : tokenizer.encode(newText, { addSpecialTokens: false });
      this.segments = this.segments.slice(0, keep);
      this.sequence.truncate(positionsOf(this.segments));
      const kept = this.sequence.length;
      const limit = llm.maxSequence;
      if (ids.length > limit - kept) throw new PromptTooLongError(kept + ids.length, limit, `${kept} cached + ${ids.length} prompt positions`);

      // 2-4. Pictures, fusion, splice.
      const embeds = await this.embed(ids, signal, t, options.onProgress);
      const promptRows = Array.isArray(embeds) ? embeds.length : (embeds as Tensor).dims[1];

      // 5-6. Prefill and decode, on this conversation's own cache.
      let firstTokenAt = 0;
      const generation = generate(this.sequence, embeds, {
        ...options,
        signal,
        tokenizer,
        onToken: (token) => {
          firstTokenAt ||= now();
          emit(token);
          options.onToken?.(token);
        },
      });
      const result = await generation.done();

      // The cache now holds the prompt and every generated id but the last one.
      const fed = result.ids.slice(0, this.sequence.length - kept - promptRows);
      this.segments.push({ text: newText, ids, positions: promptRows, fused: this.input !== undefined });
      this.segments.push({ text: tokenizer.decode(fed, { skipSpecialTokens: false }), ids: fed, positions: fed.length, fused: false });
      this.turns.push({ user: question, assistant: result.text });
      return {
        ...result,
        promptTokenIds: ids,
        llmInputTokens: promptRows,
        timings: {
          ...t,
          timeToFirstTokenMs: (firstTokenAt || now()) - started,
          prefillTokensPerSecond: result.stats.prefillTokensPerSecond,
          decodeTokensPerSecond: result.stats.decodeTokensPerSecond,
          totalMs: now() - started,
        },
      };
    } catch (err) {
      // The cache no longer matches the segments: the next question starts over.
      this.segments = [];
      this.sequence.release();
      if (signal.aborted && !(err instanceof AbortError) && !(err instanceof DisposedError)) throw new AbortError('the answer was aborted');
      throw err;
    } finally {
      unhold();
    }
  }

  /** The LLM input rows for `ids`: the ids themselves without pictures (the decoder looks them up), else embeddings fused with them. */
  private async embed(ids: number[], signal: AbortSignal, t: StageTimings, onProgress?: ProgressCallback): Promise<Tensor | number[]> {
    const { llm, vision } = this.parts;
    let t0 = now();
    if (this.input === undefined) return ids;
    const pictures = await this.pictures(ids, signal, t, onProgress);
    t0 = now();
    const textEmbeds = toFloat32(await llm.embed(ids.map((id) => Math.max(id, 0)))); // the placeholder looks up token 0 (spec §3.2)
    t.embedMs += now() - t0;
    // Streamed pictures are decoded and encoded while pre-fusion runs: their time is the other stages'.
    const others = () => t.encoderMs + t.compressorMs + t.inputMs;
    const before = others();
    t0 = now();
    // Images: keep each fresh one's prefix for the follow-ups (video frames fetch none).
    const features = this.features;
    const keep = features && ((prefix: PicturePrefix, i: number) => void (features[i] = prefix));
    const fused = await vision.fuse(textEmbeds, ids, pictures, keep);
    t.prefusionMs += now() - t0 - (others() - before);
    return splice(ids, fused, llm.config.hiddenSize, llm.dtype);
  }

  /**
   * This conversation's pictures. Images are decoded on the first turn, looked up in the model's
   * picture cache or encoded, and kept by the conversation for follow-ups. A video's frames are streamed: decoded, encoded
   * and handed to pre-fusion a batch at a time and then dropped, so memory holds one batch of
   * frames whatever the video's length (a follow-up reads the video again).
   */
  private async pictures(ids: readonly number[], signal: AbortSignal, t: StageTimings, onProgress?: ProgressCallback): Promise<PrefusionPicture[] | AsyncIterable<PrefusionImage>> {
    if (this.features) return this.features;
    const t0 = now();
    const pictures = await this.parts.resolveInput(this.input as I, { signal, onProgress });
    const count = pictures.kind === 'images' ? pictures.images.length : pictures.count;
    if (count === 0) throw new InvalidOptionError('no pictures to look at');
    this.checkLength(ids, count);
    t.inputMs += now() - t0;
    if (pictures.kind === 'images') {
      // Images this model has seen (in any conversation) come back as their cached prefixes.
      const e = await this.parts.vision.images(pictures.images);
      t.inputMs += e.hashMs;
      t.encoderMs += e.encoderMs;
      t.compressorMs += e.compressorMs;
      this.features = e.pictures;
      return e.pictures;
    }
    return this.streamFrames(pictures.frames, count, signal, t, onProgress);
  }

  private async *streamFrames(frames: AsyncIterable<RGB8>, count: number, signal: AbortSignal, t: StageTimings, onProgress?: ProgressCallback): AsyncGenerator<PrefusionImage> {
    const { vision } = this.parts;
    let batch: RGB8[] = [];
    let done = 0;
    const flush = async () => {
      const e = await vision.encode(batch, true);
      t.encoderMs += e.encoderMs;
      t.compressorMs += e.compressorMs;
      done += batch.length;
      batch = [];
      onProgress?.({ task: 'video', done, total: count, unit: 'frames' });
      return e.features;
    };
    // Time spent waiting for the next decoded frame counts as input time.
    let waitStart = now();
    for await (const img of frames) {
      t.inputMs += now() - waitStart;
      if (signal.aborted) throw new AbortError('reading the video was aborted');
      batch.push(img);
      if (batch.length >= vision.batchSize) yield* await flush();
      waitStart = now();
    }
    if (batch.length) yield* await flush();
  }

  /** Rebuild an evicted cache: every segment embedded as it was the first time, then prefilled. */
  private async recompute(signal: AbortSignal, t: StageTimings, onProgress?: ProgressCallback): Promise<void> {
    this.sequence.release();
    for (const s of this.segments) {
      if (s.ids.length === 0) continue;
      const embeds = s.fused ? await this.embed(s.ids, signal, t, onProgress) : s.ids;
      await this.sequence.prefill(embeds, signal);
    }
  }

  /** How many leading cache segments hold a prefix of `text` (0 when the cache cannot be reused). */
  private reusableSegments(text: string): number {
    let prefix = '';
    let keep = 0;
    for (const s of this.segments) {
      if (!text.startsWith(prefix + s.text)) break;
      prefix += s.text;
      keep++;
    }
    return keep;
  }

  /** Refuse before any encoding when the prompt with its vision tokens cannot fit the context. */
  private checkLength(ids: readonly number[], pictures: number): void {
    const tokensPerPicture = this.parts.vision.compressedTokens;
    const rows = this.sequence.length + ids.length - 1 + pictures * tokensPerPicture;
    const configLimit = this.parts.config.tokenizer_model_max_length;
    const limit = Math.min(this.parts.llm.maxSequence, typeof configLimit === 'number' ? configLimit : Infinity);
    if (rows > limit) throw new PromptTooLongError(rows, limit, `the prompt with ${pictures} picture(s) of ${tokensPerPicture} vision token(s)`);
  }
}
