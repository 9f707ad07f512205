// A live stream: frames pushed as they arrive, each one encoded on arrival (CLIP, the compressor and
// its own pre-fusion rows), kept in a moving window, and questions answered at any moment about the
// window then, exactly as the reference's video mode answers about those frames.
import { DisposedError, InvalidOptionError, now, VideoError } from '@llava-mini/core';
import type { RGB8, TimedFrame } from '@llava-mini/encoder';
import type { ChatTurn, PicturePrefix } from '@llava-mini/prefusion';
import { Answer, TokenChannel } from './answer.js';
import type { AskResult } from './ask-result.js';
import { type AskOptions, type ChatOptions, Conversation } from './conversation.js';
import type { ModelParts } from './model-parts.js';

export interface LiveOptions extends Omit<ChatOptions, 'history' | 'videoStateBytes'> {
  /** Frames kept per second of stream time (default 1, the reference's video sampling). */
  fps?: number;
  /** Seconds of stream the window holds (default 60): a question sees the frames of the last this many seconds. */
  windowSeconds?: number;
  /**
   * Most bytes the window's frames may hold (each frame's vision token and pre-fusion prefix;
   * default 2 GiB: the default 60 s window of the release's frames on a CPU, 19 MB each). Past it
   * the oldest frames leave the window early (counted as `evicted`).
   */
  maxBytes?: number;
  /**
   * Sampled frames waiting for the encoder (default 1). A frame that arrives when they are all
   * taken replaces the oldest waiting one, which is dropped (counted): a live stream answers about
   * what is on screen now, never about a backlog that grows without bound.
   */
  maxPending?: number;
  /** Called after each frame enters the window: its time, the window now and the counts so far. */
  onFrame?: (event: LiveFrameEvent) => void;
}

export interface LiveFrameEvent {
  time: number;
  window: LiveWindow;
  stats: Readonly<LiveStats>;
}

/** The frames a question saw: how many, and the stream times of the first and the last. */
export interface LiveWindow {
  frames: number;
  from: number;
  to: number;
  /** Bytes those frames hold. */
  bytes: number;
}

/** What happened to the frames pushed so far. */
export interface LiveStats {
  /** Frames pushed. */
  received: number;
  /** Frames taken at the sampling rate (the others came between two samples). */
  sampled: number;
  /** Sampled frames the encoder had no time for (maxPending). */
  dropped: number;
  /** Frames encoded into the window. */
  encoded: number;
  /** Frames that left the window for the byte budget before their time was up. */
  evicted: number;
  /** Milliseconds spent encoding, over all frames. */
  encodeMs: number;
}

export interface LiveAskResult extends AskResult {
  window: LiveWindow;
}

export const DEFAULT_LIVE_WINDOW_SECONDS = 60;
export const DEFAULT_LIVE_BYTES = 2 ** 31;

interface Kept {
  time: number;
  prefix: PicturePrefix;
}

interface Waiting {
  frame: RGB8;
  time: number;
  settle: () => void;
}

const positive = (v: number, name: string, integer = false) => {
  if (!(Number.isFinite(v) && v > 0 && (!integer || Number.isSafeInteger(v)))) throw new InvalidOptionError(`${name} must be a ${integer ? 'whole ' : ''}number > 0, got ${String(v)}`);
  return v;
};

/**
 * A live conversation about a stream of frames (a camera, a screen, a file played as it goes), made
 * by `LlavaMini.live()`. `push()` frames as they come; `ask()` answers about the frames in the
 * window at that moment, with the conversation's earlier turns, as the reference's video mode does
 * on exactly those frames (the window moves between questions, so each question fuses its whole
 * prompt against every frame's kept prefix and prefills the window anew: the per-frame work was
 * done on arrival). Questions wait for each other, in order; the stream never waits for a question.
 */
export class LiveStream<I = unknown> {
  private readonly fps: number;
  private readonly windowSeconds: number;
  private readonly maxBytes: number;
  private readonly maxPending: number;
  private readonly onFrame?: (event: LiveFrameEvent) => void;
  private readonly promptOptions: Omit<ChatOptions, 'history' | 'videoStateBytes'>;
  private readonly kept: Kept[] = [];
  private readonly waiting: Waiting[] = [];
  private readonly turns: ChatTurn[] = [];
  /** Callers of ready(), each waiting for the window to hold some number of frames. */
  private readonly readers = new Set<{ frames: number; resolve: () => void; reject: (e: unknown) => void }>();
  private readonly counts: LiveStats = { received: 0, sampled: 0, dropped: 0, encoded: 0, evicted: 0, encodeMs: 0 };
  /** The sampling slot of the last frame taken, on a grid that starts at the first frame's time. */
  private slot?: { start: number; index: number };
  /** The encoder's loop while frames wait for it. */
  private encoding?: Promise<void>;
  private latest = -Infinity;
  private last: Promise<unknown> = Promise.resolve();
  /** Why the last source followed ended (its error, or the end of its frames): a wait for frames it can no longer bring fails with it. */
  private ended?: unknown;
  /** Aborted by dispose(): stops a running question, and any later call. */
  private readonly disposal = new AbortController();
  private failure?: unknown;

  constructor(
    private readonly parts: ModelParts<I>,
    { fps = 1, windowSeconds = DEFAULT_LIVE_WINDOW_SECONDS, maxBytes = DEFAULT_LIVE_BYTES, maxPending = 1, onFrame, ...promptOptions }: LiveOptions = {},
  ) {
    this.fps = positive(fps, 'fps');
    this.windowSeconds = positive(windowSeconds, 'windowSeconds');
    this.maxBytes = positive(maxBytes, 'maxBytes', true);
    this.maxPending = positive(maxPending, 'maxPending', true);
    this.promptOptions = promptOptions;
    this.onFrame = onFrame;
  }

  /** The frames a question asked now would see. */
  get window(): LiveWindow {
    const k = this.kept;
    return { frames: k.length, from: k[0]?.time ?? 0, to: k[k.length - 1]?.time ?? 0, bytes: k.reduce((n, f) => n + f.prefix.bytes, 0) };
  }

  get stats(): Readonly<LiveStats> {
    return { ...this.counts };
  }

  get history(): readonly ChatTurn[] {
    return this.turns;
  }

  /**
   * Offer a frame shown at `time` (seconds, non-decreasing). It is taken when it opens a new slot
   * of the sampling grid (1/fps apart), then encoded as soon as the encoder is free. The promise
   * settles when the frame is in the window, skipped or dropped: a source that must lose nothing
   * (a file read faster than real time) awaits it; a live one does not.
   */
  push(frame: RGB8, time: number): Promise<void> {
    if (this.disposal.signal.aborted) throw new DisposedError('the live stream');
    if (this.failure) throw this.failure;
    if (!Number.isFinite(time) || time < this.latest) throw new InvalidOptionError(`frame times must be finite and non-decreasing: ${time} after ${this.latest}`);
    if (!frame || !(frame.width > 0 && frame.height > 0) || frame.data?.length !== frame.width * frame.height * 3) throw new InvalidOptionError('a live frame must be RGB pixels { width, height, data } with width * height * 3 bytes');
    this.latest = time;
    this.counts.received++;
    // Periods since the first frame. A frame up to a quarter period early still takes the next slot
    // (a source's clock jitters); a late one keeps its own, so the next on-time frame is not skipped.
    const start = this.slot?.start ?? time;
    const at = (time - start) * this.fps;
    if (this.slot && at < this.slot.index + 0.75) return Promise.resolve();
    this.slot = { start, index: this.slot ? Math.max(this.slot.index + 1, Math.floor(at)) : 0 };
    this.counts.sampled++;
    return new Promise<void>((settle) => {
      this.waiting.push({ frame, time, settle });
      while (this.waiting.length > this.maxPending) {
        this.counts.dropped++;
        this.waiting.shift()?.settle();
      }
      this.encoding ??= this.encodeWaiting();
    });
  }

  /**
   * Push every frame of `frames` (a source such as `liveVideoFrames` in Node or `mediaStreamFrames`
   * in the browser) until it ends or `signal` aborts. `wait: true` awaits each frame's encoding
   * before reading the next, so nothing is dropped (a file, not a live feed).
   */
  async follow(frames: AsyncIterable<TimedFrame>, { signal, wait = false }: { signal?: AbortSignal; wait?: boolean } = {}): Promise<void> {
    this.ended = undefined;
    try {
      for await (const frame of frames) {
        if (signal?.aborted || this.disposal.signal.aborted) break;
        const taken = this.push(frame, frame.time);
        if (wait) await taken;
      }
      await this.idle();
    } catch (err) {
      this.end(err);
      throw err;
    }
    this.end(new VideoError('the live stream', `its source ended with ${this.kept.length} frame(s) in the window`));
  }

  /** The source is done: whoever still waits for frames from it hears why. */
  private end(reason: unknown): void {
    this.ended = reason;
    this.rejectReaders(reason);
  }

  /** Whoever waits in ready() hears `reason` (each reader leaves the set as it settles). */
  private rejectReaders(reason: unknown): void {
    for (const r of [...this.readers]) r.reject(reason);
  }

  /** Resolves once no frame waits for the encoder. */
  async idle(): Promise<void> {
    while (this.encoding) await this.encoding;
    if (this.failure) throw this.failure;
  }

  /**
   * Resolves once the window holds `frames` frames (default 1: the stream has started); rejects if
   * the source fails or ends first, the live stream is disposed, or `signal` aborts.
   */
  ready(frames = 1, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    positive(frames, 'frames', true);
    const room = Math.ceil(this.windowSeconds * this.fps);
    if (frames > room) return Promise.reject(new InvalidOptionError(`the window holds at most ${room} frames (windowSeconds x fps), not ${frames}`));
    if (this.disposal.signal.aborted) return Promise.reject(new DisposedError('the live stream'));
    if (this.failure) return Promise.reject(this.failure);
    if (this.kept.length >= frames) return Promise.resolve();
    if (this.ended) return Promise.reject(this.ended);
    return new Promise<void>((resolve, reject) => {
      const reader = { frames, resolve: () => done(resolve), reject: (e: unknown) => done(() => reject(e)) };
      const onAbort = () => reader.reject(signal?.reason ?? new DisposedError('the wait'));
      const done = (settle: () => void) => {
        this.readers.delete(reader);
        signal?.removeEventListener('abort', onAbort);
        settle();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.readers.add(reader);
    });
  }

  /** Ask about the window as it is when the question's turn comes; iterate for tokens or `await answer.done()`. */
  ask(question: string, options: AskOptions = {}): Answer<LiveAskResult> {
    if (this.disposal.signal.aborted) throw new DisposedError('the live stream');
    const channel = new TokenChannel();
    const result = this.last.catch(() => {}).then(() => this.turn(question, options, channel));
    this.last = result;
    return new Answer(channel, result);
  }

  /** Stop taking frames and free the window; a running question stops with an error. */
  dispose(): void {
    this.disposal.abort(new DisposedError('the live stream'));
    for (const w of this.waiting.splice(0)) w.settle();
    this.rejectReaders(new DisposedError('the live stream'));
    this.kept.length = 0;
  }

  private async turn(question: string, options: AskOptions, channel: TokenChannel): Promise<LiveAskResult> {
    if (this.disposal.signal.aborted) throw new DisposedError('the live stream');
    const frames = [...this.kept];
    if (frames.length === 0) throw new InvalidOptionError('the live stream has no frames yet: ask once the first one is in the window');
    const window = this.window;
    // The whole conversation on exactly these frames, as the reference would run it (no state kept: the window moves on).
    const conversation = new Conversation(this.parts, undefined, { ...this.promptOptions, history: this.turns, videoStateBytes: 0 }, frames.map((f) => f.prefix));
    try {
      const signal = AbortSignal.any([channel.signal, this.disposal.signal, ...(options.signal ? [options.signal] : [])]);
      const answer = conversation.ask(question, {
        ...options,
        signal,
        onToken: (t) => {
          channel.push(t);
          options.onToken?.(t);
        },
      });
      const r = await answer.done();
      this.turns.push({ user: question, assistant: r.text });
      return { ...r, window };
    } finally {
      conversation.dispose();
    }
  }

  /** Encode waiting frames one at a time, oldest first, into the window. */
  private async encodeWaiting(): Promise<void> {
    // Start after `this.encoding` holds this run, so that its end always clears it in the same step
    // as the last look at `waiting`: a frame pushed after that starts a new run.
    await null;
    try {
      for (let next = this.waiting.shift(); next && !this.disposal.signal.aborted; next = this.waiting.shift()) {
        try {
          const t = now();
          const prefix = await this.parts.vision.framePrefix(next.frame);
          this.counts.encodeMs += now() - t;
          if (this.disposal.signal.aborted) break;
          this.counts.encoded++;
          this.keep({ time: next.time, prefix });
          try {
            this.onFrame?.({ time: next.time, window: this.window, stats: this.stats });
          } catch {
            // A listener's error is its own: the stream goes on.
          }
          for (const r of [...this.readers]) if (this.kept.length >= r.frames) r.resolve();
        } catch (err) {
          // Frames were checked when pushed, so a failure here is the model's (a session error): stop taking more.
          this.failure = err;
          for (const w of this.waiting.splice(0)) w.settle();
          this.rejectReaders(err);
        } finally {
          next.settle();
        }
      }
    } finally {
      this.encoding = undefined;
    }
  }

  /** Add a frame; frames older than the window, then the oldest past the byte budget, leave. */
  private keep(frame: Kept): void {
    this.kept.push(frame);
    const oldest = frame.time - this.windowSeconds;
    while (this.kept.length > 1 && this.kept[0].time <= oldest) this.kept.shift();
    let bytes = this.kept.reduce((n, f) => n + f.prefix.bytes, 0);
    while (this.kept.length > 1 && bytes > this.maxBytes) {
      bytes -= (this.kept.shift() as Kept).prefix.bytes;
      this.counts.evicted++;
    }
  }
}
