// One conversation's turn, start to end: tokens -> pictures -> fusion -> splice -> prefill -> decode.
// The conversation owns everything that is not weights: its KV cache (a Sequence of the LLM), its
// pictures' features, its history. The loaded model (LlavaMini) only lends it sessions.
import { AbortError, DisposedError, InvalidOptionError, now, type ProgressCallback, PromptTooLongError, type Tensor, tensor, toFloat32 } from '@llava-mini/core';
import { checkChoices, checkGenerateOptions, generateChoices, type GenerateOptions, type GeneratedToken, type Sequence } from '@llava-mini/llm';
import { buildLlavaPrompt, type ChatTurn, embeddingIds, IMAGE_TOKEN_INDEX, type LlavaPromptOptions, llmInput, type PicturePrefix, type PrefusionPicture } from '@llava-mini/prefusion';
import { Answer, TokenChannel } from './answer.js';
import type { ModelParts, Pictures } from './model-parts.js';
import { addTimings, type AskChoice, type AskResult, NO_TIME, type StageTimings } from './ask-result.js';
import type { FrameStream, PictureTimings } from './vision.js';

/** A conversation keeps a video's per-frame pre-fusion state up to this many bytes by default (ChatOptions.videoStateBytes). */
export const DEFAULT_VIDEO_STATE_BYTES = 2 ** 30;

/** How a conversation's prompt is rendered (fixed for it), and earlier turns to start from (a stateless API replaying a conversation: the first ask runs them all). */
export type ChatOptions = Omit<LlavaPromptOptions, 'image'> & {
  /**
   * Most bytes of a video's pre-fusion state (each frame's rows and the conversation's text after
   * them) the conversation keeps, so a follow-up neither decodes nor encodes the video again and
   * runs only its own text per frame. A video whose state would take more is read again for each
   * follow-up (as with 0). Default DEFAULT_VIDEO_STATE_BYTES (1 GiB).
   */
  videoStateBytes?: number;
};

/** Options of one question: generation (sampling, limits, stop, signal, onToken) and progress. */
export interface AskOptions extends Omit<GenerateOptions, 'tokenizer'> {
  onProgress?: ProgressCallback;
  /** Answers to this one prompt (1-8, default 1), decoded together from one prefill; the conversation goes on with the first. Tokens carry their `choice`. */
  n?: number;
}

/** A prompt the KV cache holds: its text, its ids and its rows. */
interface Segment {
  text: string;
  ids: number[];
  positions: number;
}

/** A turn's prompt as the tokens step leaves it: the ids to run, and what of the cache they follow. */
interface TurnPrompt {
  /** The whole prompt on a fresh cache (with its image placeholder), else only the text past the reused segments. */
  ids: number[];
  /** The text those ids are. */
  text: string;
  /** How many leading cache segments the prompt reuses, and their positions. */
  segments: number;
  cached: number;
}

/** A turn's pictures as the input resolver decoded them (a video's frames still to come). */
interface Decoded {
  pictures: Pictures;
  count: number;
  inputMs: number;
}

/** The LLM input of a prompt: its rows (token ids the decoder looks up, or embeddings) and what making them took. */
interface LlmInput {
  rows: Tensor | number[];
  timings: StageTimings;
}

const positionsOf = (segments: readonly Segment[]): number => segments.reduce((n, s) => n + s.positions, 0);
const rowsOf = (rows: Tensor | number[]): number => (Array.isArray(rows) ? rows.length : rows.dims[1]);

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
 * follow-up gives exactly the tokens of the whole conversation replayed from its history, as the
 * reference answers it, without re-running it: the prompt is rendered with the history, the
 * earlier prompts the KV cache holds stay (their rows cannot change: pre-fusion and the LLM are
 * causal), and the rest (the last answer as the prompt renders it, then the new question) runs
 * through pre-fusion after all the text before it and into the LLM. The rows the LLM wrote while
 * answering are replaced by those, since the reference fuses an earlier answer like any prompt
 * text. Turns asked while one is running wait for it (in order). If the model's KV cap evicted
 * this conversation's cache while it was idle, the next turn first recomputes it, prompt by
 * prompt, exactly as it was built.
 */
export class Conversation<I = unknown> {
  /** The LLM's cache of this conversation; swapped once, on a fresh video prompt, for a fork of the model's held opening. */
  private sequence: Sequence;
  private segments: Segment[] = [];
  private readonly turns: ChatTurn[];
  private readonly options: Omit<ChatOptions, 'history' | 'videoStateBytes'>;
  private readonly videoStateBytes: number;
  /** No pictures at all: the prompt has no image placeholder and its ids go to the LLM as they are. */
  private readonly textOnly: boolean;
  /**
   * The images, once the first turn has looked at them: each one's pre-fusion prefix once a pass
   * has made it (until then its features), so a follow-up runs only its text rows; kept here even
   * if the model's picture cache lets it go. A video's frames are streamed, not kept.
   */
  private features?: PrefusionPicture[];
  /**
   * Each picture's pre-fusion state after the prompts the KV cache holds (its prefix continued
   * through their text), where the graph returns it, so a follow-up runs only its own rows; and
   * how many of the cache's prompts it has seen. A video's frames keep theirs within videoStateBytes.
   */
  private states?: { pictures: PicturePrefix[]; prompts: number };
  private last: Promise<unknown> = Promise.resolve();
  private readonly disposal = new AbortController();

  constructor(
    private readonly parts: ModelParts<I>,
    private readonly input: I | undefined,
    { history, videoStateBytes = DEFAULT_VIDEO_STATE_BYTES, ...options }: ChatOptions = {},
    /**
     * Pictures made ready for pre-fusion already (a live stream's window: each frame's prefix), in
     * place of `input`: looked at as a video's frames are, their states kept within videoStateBytes.
     */
    prepared?: readonly PrefusionPicture[],
  ) {
    if (!(Number.isSafeInteger(videoStateBytes) && videoStateBytes >= 0)) throw new InvalidOptionError(`videoStateBytes must be an integer >= 0, got ${String(videoStateBytes)}`);
    this.turns = [...(history ?? [])];
    this.options = options;
    this.videoStateBytes = videoStateBytes;
    if (prepared) this.features = [...prepared];
    this.textOnly = input === undefined && prepared === undefined;
    this.sequence = parts.llm.sequence();
  }

  get history(): readonly ChatTurn[] {
    return this.turns;
  }

  /**
   * The ids of the prompts whose positions the KV cache holds (IMAGE_TOKEN_INDEX where vision tokens
   * went); the last answer's rows follow them until the next turn replaces them.
   */
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
    checkChoices(options.n ?? 1);
    const channel = new TokenChannel();
    const result = this.last.catch(() => {}).then(() => this.turn(question, options, channel.push, channel.signal));
    this.last = result;
    return new Answer(channel, result);
  }

  /** Free the KV cache and the pictures' features now; a running turn stops with AbortError. */
  dispose(): void {
    if (this.disposal.signal.aborted) return;
    this.disposal.abort(new AbortError('the conversation was disposed'));
    this.sequence.dispose();
    this.features = undefined;
    this.states = undefined;
    this.segments = [];
  }

  private async turn(question: string, options: AskOptions, emit: (t: GeneratedToken) => void, cancel: AbortSignal): Promise<AskResult> {
    const started = now();
    if (this.disposal.signal.aborted) throw new DisposedError('the conversation');
    const signal = AbortSignal.any([cancel, this.disposal.signal, ...(options.signal ? [options.signal] : [])]);
    const { onProgress } = options;
    let unhold = this.sequence.hold();
    try {
      // 1. Tokens: the prompt with the history; the cached segments whose text is a prefix of it stay.
      const prompt = this.tokens(question);

      // 2. Pictures, decoded; then the one length check, before any model work.
      const decoded = await this.readPictures(prompt.segments, signal, onProgress);
      // A fresh prompt (with the placeholder) looks at the pictures, read now or kept from before.
      this.checkLength(prompt, decoded?.count ?? (prompt.segments === 0 ? (this.features?.length ?? 0) : 0));

      // The cap evicted this idle conversation's cache: rebuild it first. Then drop what the prompt
      // does not reuse, and the last answer's own rows (it comes back as prompt text).
      const rebuilt = this.sequence.length >= positionsOf(this.segments) ? NO_TIME : await this.recompute(signal, onProgress);
      this.segments = this.segments.slice(0, prompt.segments);
      this.sequence.truncate(prompt.cached);

      // 3-4. Fusion (after all the text the cache holds) and splice: the LLM input.
      const input = await this.llmInput(prompt.ids, decoded, this.segments, signal, onProgress);

      // 5-6. Prefill and decode, on this conversation's own cache (a video's opening rows forked from the model's held copy).
      const opening = await this.openWith(prompt, decoded, input.rows, signal);
      let rest = opening.rest;
      if (opening.sequence) {
        if (this.disposal.signal.aborted) {
          opening.sequence.dispose();
          throw new DisposedError('the conversation');
        }
        unhold();
        this.sequence.dispose();
        this.sequence = opening.sequence;
        unhold = this.sequence.hold();
        // Evicted between the fork and the hold (the cap is shared): prefill it all after all.
        if (this.sequence.length !== opening.rows) {
          this.sequence.release();
          rest = input.rows;
        }
      }
      let firstTokenAt = 0;
      const generations = generateChoices(this.sequence, rest, options.n ?? 1, {
        ...options,
        signal,
        tokenizer: this.parts.tokenizer,
        onToken: (token) => {
          firstTokenAt ||= now();
          emit(token);
          options.onToken?.(token);
        },
      });
      const results = await Promise.all(generations.map((g) => g.done()));
      const { ids, headerTokens, text, finishReason, stats } = results[0];

      // The cache now holds the prompt, then every generated id but the last one (dropped next turn).
      const promptRows = rowsOf(input.rows);
      this.segments.push({ text: prompt.text, ids: prompt.ids, positions: promptRows });
      this.turns.push({ user: question, assistant: text });
      const t = addTimings(rebuilt, input.timings);
      return {
        ids,
        headerTokens,
        text,
        finishReason,
        stats,
        promptTokenIds: prompt.ids,
        llmInputTokens: promptRows,
        timings: {
          ...t,
          timeToFirstTokenMs: (firstTokenAt || now()) - started,
          prefillTokensPerSecond: stats.prefillTokensPerSecond,
          decodeTokensPerSecond: stats.decodeTokensPerSecond,
          totalMs: now() - started,
        },
        ...(results.length > 1 && { choices: results.map((r) => ({ ids: r.ids, headerTokens: r.headerTokens, text: r.text, finishReason: r.finishReason })) }),
      };
    } catch (err) {
      // The cache no longer matches the segments: the next question starts over.
      this.segments = [];
      this.states = undefined;
      this.sequence.release();
      if (signal.aborted && !(err instanceof AbortError) && !(err instanceof DisposedError)) throw new AbortError('the answer was aborted');
      throw err;
    } finally {
      unhold();
    }
  }

  /**
   * A fresh video prompt's opening (the fused text before the placeholder, then the vision tokens)
   * does not depend on the question after it: when the model holds it for this video (a conversation
   * asked before), a fork of it to take this conversation's place; otherwise the opening is
   * prefilled here and the model keeps a copy. Returns what is left to prefill.
   */
  private async openWith(prompt: TurnPrompt, decoded: Decoded | undefined, rows: Tensor | number[], signal: AbortSignal): Promise<{ sequence?: Sequence; rows?: number; rest: Tensor | number[] }> {
    const video = decoded?.pictures.kind === 'video' ? decoded.pictures : undefined;
    if (!video?.key || prompt.segments !== 0 || Array.isArray(rows) || this.parts.openings.max === 0) return { rest: rows };
    const at = prompt.ids.indexOf(IMAGE_TOKEN_INDEX);
    const n = at + video.count * this.parts.vision.compressedTokens;
    const [, S, H] = rows.dims;
    if (at < 0 || n >= S) return { rest: rows };
    const part = (from: number, to: number) => tensor(rows.dtype, [1, to - from, H], rows.data.subarray(from * H, to * H) as never);
    const key = `${video.key}|${prompt.ids.slice(0, at).join(',')}`;
    const sequence = await this.parts.openings.fork(key, n);
    if (!sequence) {
      await this.sequence.prefill(part(0, n), signal);
      await this.parts.openings.keep(key, this.sequence);
    }
    return { sequence, rows: n, rest: part(n, S) };
  }

  /** The turn's prompt: rendered with the history, then cut to the text past the cache segments it reuses. */
  private tokens(question: string): TurnPrompt {
    const { tokenizer } = this.parts;
    const prompt = buildLlavaPrompt(tokenizer, question, { ...this.options, image: !this.textOnly, history: this.turns });
    const segments = this.reusableSegments(prompt.text);
    const reused = this.segments.slice(0, segments);
    const text = prompt.text.slice(reused.map((s) => s.text).join('').length);
    // A fresh prompt goes in whole (with its image placeholder); a follow-up only as the text past the cache.
    const ids = segments === 0 ? prompt.ids : tokenizer.encode(text, { addSpecialTokens: false });
    return { ids, text, segments, cached: positionsOf(reused) };
  }

  /**
   * The pictures of a prompt that follows `prompts` cached ones, decoded: images on the
   * conversation's first turn (it keeps their features after it); a video unless its frames'
   * states carry on from those prompts (otherwise its frames are streamed again); none for text.
   */
  private async readPictures(prompts: number, signal: AbortSignal, onProgress?: ProgressCallback): Promise<Decoded | undefined> {
    if (this.features || this.input === undefined || this.resumable(prompts)) return undefined;
    const t0 = now();
    const vision = this.parts.vision;
    const knownVideo = vision.pictures.maxBytes > 0 ? (key: string) => vision.knownVideo(key) : undefined;
    const pictures = await this.parts.resolveInput(this.input, { signal, onProgress, knownVideo });
    const count = pictures.kind === 'images' ? pictures.images.length : pictures.count;
    if (count === 0) throw new InvalidOptionError('no pictures to look at');
    return { pictures, count, inputMs: now() - t0 };
  }

  /**
   * Refuse a prompt that cannot fit the context, before any model work: its positions after the
   * cached ones; and when this turn looks at `pictures`, with their vision tokens in place of the
   * placeholder, against the config's tokenizer_model_max_length too.
   */
  private checkLength({ ids, cached }: TurnPrompt, pictures: number): void {
    const limit = this.parts.llm.maxSequence;
    if (ids.length > limit - cached) throw new PromptTooLongError(cached + ids.length, limit, `${cached} cached + ${ids.length} prompt positions`);
    if (pictures === 0) return;
    const tokensPerPicture = this.parts.vision.compressedTokens;
    const rows = cached + ids.length - 1 + pictures * tokensPerPicture;
    const configLimit = this.parts.config.tokenizer_model_max_length;
    const contextLimit = Math.min(limit, typeof configLimit === 'number' ? configLimit : Infinity);
    if (rows > contextLimit) throw new PromptTooLongError(rows, contextLimit, `the prompt with ${pictures} picture(s) of ${tokensPerPicture} vision token(s)`);
  }

  /** Rebuild an evicted cache: every prompt fused as it was the first time (after the ones before it), then prefilled. Returns the stages' time. */
  private async recompute(signal: AbortSignal, onProgress?: ProgressCallback): Promise<StageTimings> {
    this.sequence.release();
    this.states = undefined;
    let timings = NO_TIME;
    for (const [i, s] of this.segments.entries()) {
      const input = await this.llmInput(s.ids, await this.readPictures(i, signal, onProgress), this.segments.slice(0, i), signal, onProgress);
      await this.sequence.prefill(input.rows, signal);
      timings = addTimings(timings, input.timings);
    }
    return timings;
  }

  /**
   * The LLM input for `ids`: the ids themselves without pictures (the decoder looks them up); else
   * their text embeddings fused with the pictures in pre-fusion, after the `earlier` prompts (which
   * pre-fusion's causal attention lets every new row see), the vision tokens spliced in place of
   * the placeholder. Where the pictures' states have seen exactly those prompts, pre-fusion carries
   * on from them with this prompt's rows alone; otherwise (no state kept: a video past
   * videoStateBytes, a graph without states, a rebuilt cache) it runs the earlier prompts' text
   * again before this one's.
   */
  private async llmInput(ids: number[], decoded: Decoded | undefined, earlier: readonly Segment[], signal: AbortSignal, onProgress?: ProgressCallback): Promise<LlmInput> {
    if (this.textOnly) return { rows: ids, timings: NO_TIME };
    const { llm, vision } = this.parts;
    const resume = this.resumable(earlier.length);
    // A rebuilt cache may have left a video without states after all: then it is read again here.
    const pictures = resume ? { pictures: resume, timings: NO_TIME } : await this.preparePictures(decoded ?? (await this.readPictures(earlier.length, signal, onProgress)), signal, onProgress);
    const context = resume ? [] : earlier.flatMap((s) => s.ids);
    const text = [...context, ...ids];
    const t0 = now();
    const textEmbeds = toFloat32(await llm.embed(embeddingIds(text)));
    const embedMs = now() - t0;
    // Images: keep each fresh one's prefix; every picture's state after this prompt, for the
    // follow-ups (a video's frames only while they fit videoStateBytes).
    const features = this.features;
    const budget = features && this.input !== undefined ? Infinity : this.videoStateBytes;
    let states: PicturePrefix[] | undefined = [];
    let bytes = 0;
    const fused = await vision.fuse(textEmbeds, text, pictures.pictures, {
      onPrefix: features && ((prefix, i) => void (features[i] = prefix)),
      onState: budget > 0 ? (state, i) => {
        bytes += state.bytes;
        if (states && bytes <= budget) states[i] = state;
        else states = undefined;
      } : undefined,
    });
    this.states = states?.length === fused.frames ? { pictures: states, prompts: earlier.length + 1 } : undefined;
    // The context's fused rows are those the cache already holds: only this prompt's go to the LLM.
    const own = fused.fusedText.subarray((context.length * fused.fusedText.length) / text.length);
    const { inputMs, encoderMs, compressorMs } = pictures.timings; // a stream's are complete once pre-fusion has read it
    return {
      rows: llmInput(ids, { fusedText: own, visionTokens: fused.visionTokens }, llm.dtype),
      timings: { inputMs: (decoded?.inputMs ?? 0) + inputMs, encoderMs, compressorMs, embedMs, prefusionMs: fused.ms },
    };
  }

  /** The pictures' states, where they carry on from exactly `prompts` cached prompts. */
  private resumable(prompts: number): PicturePrefix[] | undefined {
    return this.states?.prompts === prompts ? this.states.pictures : undefined;
  }

  /**
   * Pictures ready for pre-fusion, with the time they took. Images: on the first turn looked up in
   * the model's picture cache or encoded, then kept by the conversation for its follow-ups. A
   * video: its frames encoded a batch at a time as pre-fusion reads them, then dropped, so memory
   * holds one batch of frames whatever the video's length (the states llmInput keeps are what
   * spares a follow-up reading it again).
   */
  private async preparePictures(decoded: Decoded | undefined, signal: AbortSignal, onProgress?: ProgressCallback): Promise<{ pictures: PrefusionPicture[] | FrameStream; timings: Readonly<PictureTimings> }> {
    if (!decoded) return { pictures: this.features as PrefusionPicture[], timings: NO_TIME };
    const { vision } = this.parts;
    if (decoded.pictures.kind === 'video') {
      const stream = vision.frames(decoded.pictures.frames, decoded.count, { signal, onProgress, key: decoded.pictures.key });
      return { pictures: stream, timings: stream.timings };
    }
    // Images this model has seen (in any conversation) come back as their cached prefixes.
    const e = await vision.images(decoded.pictures.images);
    this.features = e.pictures;
    return { pictures: e.pictures, timings: { inputMs: e.hashMs, encoderMs: e.encoderMs, compressorMs: e.compressorMs } };
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
}
