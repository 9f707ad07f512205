import { AbortError, InvalidOptionError, now, type Tensor } from '@llava-mini/core';
import { checkResponseFormat, compileFormat, type Grammar, type GrammarMatcher, type ResponseFormat } from './grammar.js';
import type { Sequence } from './sequence.js';
import { assistantHeaderIds } from './tokenizer.js';
import { checkSamplingOptions, logprobsOf, Sampler, type SamplingOptions } from './sampling.js';
import { TextStream } from './text.js';
import type { Tokenizer } from './tokenizer.js';

export interface GenerateOptions extends SamplingOptions {
  /**
   * The most answer tokens to generate, default 512 (run_llava_mini.py). A consumed assistant
   * header is not counted: the budget is the answer's alone.
   */
  maxNewTokens?: number;
  /** Ids that end generation (not shown). Default: the tokenizer's stop ids (generation_config.json). */
  stopIds?: readonly number[];
  /** Texts that end generation; the text is cut before them. Needs `tokenizer`. */
  stopStrings?: readonly string[];
  /** Turns ids into streamed text; without it tokens carry ids only. */
  tokenizer?: Tokenizer;
  /** Hide a generated assistant header (`<|start_header_id|>assistant<|end_header_id|>\n\n`). Default true. */
  consumeAssistantHeader?: boolean;
  /** Stops generation between steps; the sequence's KV cache is freed and the iterator throws AbortError. */
  signal?: AbortSignal;
  /** Called for every generated token, in order (the callback form of the stream). */
  onToken?: (token: GeneratedToken) => void;
  /**
   * Give every token its log-probability (`GeneratedToken.logprobs`), from the model's own logits:
   * before the repetition penalty, temperature, top-k/top-p and a responseFormat's mask reshape them.
   */
  logprobs?: boolean;
  /** With `logprobs`: also the 0-20 most likely tokens at each step, with theirs. */
  topLogprobs?: number;
  /**
   * What the answer must be: any JSON object (`json_object`) or JSON a schema allows (`json_schema`),
   * enforced on the logits before each token is sampled (after the assistant header the model
   * writes, which stays its own). The text always parses unless the token budget ends it first
   * (finishReason 'length'). A schema the engine cannot compile is an InvalidOptionError. Needs `tokenizer`.
   */
  responseFormat?: ResponseFormat;
}

/** A token's log-probability, as OpenAI's logprobs carry it; `token` and `bytes` need a tokenizer ('' and [] without one). */
export interface TokenLogprob {
  id: number;
  /** The token's text alone (U+FFFD where it holds part of a character: `bytes` are exact). */
  token: string;
  bytes: number[];
  logprob: number;
}

export interface GeneratedToken {
  id: number;
  /** Text this token made visible ('' inside a multi-byte character, a held-back stop-string prefix, or a consumed header). */
  text: string;
  /** 0-based position among the generated tokens. */
  index: number;
  /** Taken as the assistant header the model wrote: no text, and outside the maxNewTokens budget. */
  header: boolean;
  /** Which of several answers to one prompt it belongs to (generateChoices); absent for a lone answer. */
  choice?: number;
  /** With the `logprobs` option: this token's log-probability, and the most likely tokens at its step (`topLogprobs` of them). */
  logprobs?: TokenLogprob & { top: TokenLogprob[] };
}

export interface GenerationStats {
  /** Positions the prompt took (its embeddings' rows). */
  promptTokens: number;
  /** Tokens sampled, without the stop id. */
  generatedTokens: number;
  timeToFirstTokenMs: number;
  prefillTokensPerSecond: number;
  /** Decode steps (one decoder run + sampling) per second. */
  decodeTokensPerSecond: number;
}

export type FinishReason = 'stop' | 'length' | 'context';

export interface GenerationResult {
  /** Generated ids (a consumed header included; the stop id not). */
  ids: number[];
  /** How many of `ids` are the consumed assistant header; the answer's tokens are the others (what maxNewTokens counts). */
  headerTokens: number;
  /** The visible text, trimmed as the reference does. */
  text: string;
  finishReason: FinishReason;
  stats: GenerationStats;
}

/** What generate() needs to know about the prompt before any work: its length and how to get its rows (embeddings, or token ids the decoder looks up). */
export interface PromptSource {
  length: number;
  embeds: () => Promise<Tensor | readonly number[]>;
}

function toSource(seq: Sequence, prompt: Tensor | readonly number[]): PromptSource {
  if (Array.isArray(prompt)) {
    const ids = prompt as readonly number[];
    return { length: ids.length, embeds: async () => ids };
  }
  const t = prompt as Tensor;
  return { length: t.dims.length === 3 ? t.dims[1] : 0, embeds: async () => t };
}

/** Check every generation option (not the prompt), so bad input fails before any model work. */
export function checkGenerateOptions(o: GenerateOptions): void {
  checkSamplingOptions(o);
  const max = o.maxNewTokens ?? 512;
  if (!Number.isSafeInteger(max) || max < 1) throw new InvalidOptionError(`maxNewTokens must be an integer >= 1, got ${String(max)}`);
  for (const id of o.stopIds ?? []) {
    if (!Number.isInteger(id) || id < 0) throw new InvalidOptionError(`stopIds must be token ids, got ${String(id)}`);
  }
  for (const s of o.stopStrings ?? []) if (typeof s !== 'string' || s === '') throw new InvalidOptionError('stopStrings must be non-empty strings');
  if (o.stopStrings?.length && !o.tokenizer) throw new InvalidOptionError('stopStrings need a tokenizer to see the text');
  const top = o.topLogprobs;
  if (top !== undefined && !(Number.isSafeInteger(top) && top >= 0 && top <= MAX_TOP_LOGPROBS)) throw new InvalidOptionError(`topLogprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${String(top)}`);
  if (top && !o.logprobs) throw new InvalidOptionError('topLogprobs needs logprobs: true');
  if (o.responseFormat !== undefined) {
    checkResponseFormat(o.responseFormat);
    if (o.responseFormat.type !== 'text' && !o.tokenizer) throw new InvalidOptionError('responseFormat needs a tokenizer');
  }
}

/** The log-probabilities of `id` and of the `top` most likely ids under `logits`, with their texts. */
function tokenLogprobs(logits: Float32Array, id: number, top: number, tokenizer?: Tokenizer): TokenLogprob & { top: TokenLogprob[] } {
  const describe = (i: number, logprob: number): TokenLogprob => ({
    id: i,
    token: tokenizer?.decode([i], { skipSpecialTokens: false }) ?? '',
    bytes: tokenizer?.tokenBytes(i) ?? [],
    logprob,
  });
  const lp = logprobsOf(logits, id, top);
  return { ...describe(id, lp.logprob), top: lp.top.map((t) => describe(t.id, t.logprob)) };
}

function checkPrompt(seq: Sequence, prompt: PromptSource): void {
  if (prompt.length < 1) throw new InvalidOptionError('the prompt is empty');
  seq.assertRoom(prompt.length);
}

/**
 * Generate tokens after `prompt` (embeddings [1, S, H], or token ids), appending to the sequence's
 * KV cache (so a follow-up turn continues it). The cache holds the prompt and every generated
 * token but the last one afterwards. Iterate it with `for await`, or call `done()` (with `onToken`
 * for streaming) to run it to the end.
 */
export function generate(seq: Sequence, prompt: Tensor | readonly number[] | PromptSource, options: GenerateOptions = {}): Generation {
  const source = promptSource(seq, prompt);
  checkGenerateOptions(options);
  checkPrompt(seq, source);
  return new Generation(
    run(async () => {
      const release = seq.hold();
      try {
        return { seq, prefilled: await prefill(seq, source, options), release };
      } catch (err) {
        release();
        throw err;
      }
    }, options),
  );
}

/** The most answers one prompt may have (`generateChoices`). */
export const MAX_CHOICES = 8;

/** Most alternatives a token's logprobs list (`topLogprobs`, OpenAI's `top_logprobs`). */
export const MAX_TOP_LOGPROBS = 20;

/**
 * `n` answers to one prompt, which runs once: `seq` continues the first answer, and each other one
 * decodes on a fork of it (the cache copied after the prefill; disposed when that answer ends), so
 * the n step together, batched where the cache mode allows. Answer i samples with `seed + i` when a
 * seed is given, and its tokens carry `choice: i` (n = 1 is generate()). Consume every one of them (they run as they are read).
 */
export function generateChoices(seq: Sequence, prompt: Tensor | readonly number[] | PromptSource, n: number, options: GenerateOptions = {}): Generation[] {
  checkChoices(n);
  if (n === 1) return [generate(seq, prompt, options)];
  const source = promptSource(seq, prompt);
  checkGenerateOptions(options);
  checkPrompt(seq, source);
  // The prefill and the forks, made by whichever answer is read first. Each fork is held from its
  // making, so the KV cap cannot take it before its answer runs.
  let shared: Promise<{ prefilled: Prefilled; forks: { seq: Sequence; release: () => void }[] }> | undefined;
  const begin = () =>
    (shared ??= (async () => {
      const forks: { seq: Sequence; release: () => void }[] = [{ seq, release: seq.hold() }];
      try {
        const prefilled = await prefill(seq, source, options);
        while (forks.length < n) {
          const fork = await seq.fork();
          const unhold = fork.hold();
          forks.push({ seq: fork, release: () => (unhold(), fork.dispose()) });
        }
        return { prefilled, forks };
      } catch (err) {
        forks.forEach((f) => f.release());
        throw err;
      }
    })());
  return Array.from({ length: n }, (_, choice) => {
    const o = { ...options, seed: options.seed === undefined ? undefined : options.seed + choice };
    const start = async () => {
      const { prefilled, forks } = await begin();
      // Each answer samples from its own copy of the prompt's logits (the sampler reshapes them).
      return { ...forks[choice], prefilled: { ...prefilled, logits: prefilled.logits.slice() } };
    };
    return new Generation(run(start, o, choice));
  });
}

/** Throw InvalidOptionError unless `n` answers to one prompt can be made. */
export function checkChoices(n: number): void {
  if (!(Number.isSafeInteger(n) && n >= 1 && n <= MAX_CHOICES)) throw new InvalidOptionError(`n must be an integer in [1, ${MAX_CHOICES}], got ${String(n)}`);
}

function promptSource(seq: Sequence, prompt: Tensor | readonly number[] | PromptSource): PromptSource {
  return 'embeds' in prompt && typeof prompt.embeds === 'function' ? (prompt as PromptSource) : toSource(seq, prompt as Tensor | readonly number[]);
}

export class Generation implements AsyncIterable<GeneratedToken> {
  /** Settles when the generation ends: its result, or the error that stopped it. */
  readonly finished: Promise<GenerationResult>;
  private started = false;
  private finish!: (r: GenerationResult) => void;
  private fail!: (e: unknown) => void;

  /** Made by generate() and generateChoices(). */
  constructor(private readonly steps: AsyncGenerator<GeneratedToken, GenerationResult>) {
    this.finished = new Promise<GenerationResult>((resolve, reject) => {
      this.finish = resolve;
      this.fail = reject;
    });
    this.finished.catch(() => {}); // reported by the iterator; nobody may be waiting here
  }

  [Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    if (this.started) throw new InvalidOptionError('a generation can be consumed once');
    this.started = true;
    return {
      next: async () => {
        try {
          const r = await this.steps.next();
          if (!r.done) return r;
          this.finish(r.value);
          return { done: true, value: undefined };
        } catch (err) {
          this.fail(err);
          throw err;
        }
      },
      return: async () => {
        await this.steps.return(undefined as never);
        this.fail(new AbortError('the generation was left before its end'));
        return { done: true, value: undefined };
      },
    };
  }

  /** Run to the end (or, while iterating elsewhere, wait for it); returns the ids, text and stats. */
  async done(): Promise<GenerationResult> {
    if (!this.started) {
      const it = this[Symbol.asyncIterator]();
      while (!(await it.next()).done);
    }
    return this.finished;
  }
}

/** What a prompt's prefill leaves for decoding: the logits after it, its rows, when it began and how long it took, and the answer's grammar. */
interface Prefilled {
  logits: Float32Array;
  promptTokens: number;
  startedAt: number;
  ms: number;
  grammar?: Grammar;
}

/** Where a generation decodes, after the prefill, and what to do when it ends (its hold released; a fork disposed). */
interface Begun {
  seq: Sequence;
  prefilled: Prefilled;
  release: () => void;
}

async function prefill(seq: Sequence, prompt: PromptSource, o: GenerateOptions): Promise<Prefilled> {
  const startedAt = now();
  // The grammar compiles (or comes from the cache) while the prompt runs.
  const format = o.responseFormat?.type === 'text' ? undefined : o.responseFormat;
  const compiling = format && compileFormat(o.tokenizer as Tokenizer, format);
  compiling?.catch(() => {}); // awaited below, unless the prefill fails first
  try {
    if (o.signal?.aborted) throw new AbortError('generation was aborted');
    const rows = await prompt.embeds();
    const promptTokens = Array.isArray(rows) ? rows.length : (rows as Tensor).dims[1]; // vision tokens may make it longer than the ids
    const logits = await seq.prefill(rows, o.signal);
    const ms = now() - startedAt;
    return { logits, promptTokens, startedAt, ms, grammar: await compiling };
  } catch (err) {
    if (err instanceof AbortError) seq.release();
    throw err;
  }
}

async function* run(start: () => Promise<Begun>, o: GenerateOptions, choice?: number): AsyncGenerator<GeneratedToken, GenerationResult> {
  const { seq, prefilled, release } = await start();
  let matcher: GrammarMatcher | undefined;
  try {
    matcher = await prefilled.grammar?.matcher();
    return yield* decode(seq, prefilled, o, matcher, choice);
  } finally {
    matcher?.dispose();
    release();
  }
}

async function* decode(seq: Sequence, prefilled: Prefilled, o: GenerateOptions, grammar: GrammarMatcher | undefined, choice?: number): AsyncGenerator<GeneratedToken, GenerationResult> {
  const sampler = new Sampler(o);
  const stopIds = new Set(o.stopIds ?? o.tokenizer?.stopIds ?? []);
  const maxNew = o.maxNewTokens ?? 512;
  const text = o.tokenizer ? new TextStream(o.tokenizer, o.stopStrings ?? [], o.consumeAssistantHeader === false ? [] : assistantHeaderIds(o.tokenizer)) : undefined;
  const ids: number[] = [];
  const abort = () => {
    seq.release();
    return new AbortError('generation was aborted');
  };
  const { promptTokens, startedAt: t0, ms: prefillMs } = prefilled;
  let logits = prefilled.logits;
  let firstTokenMs = 0;
  let finishReason: FinishReason = 'length';
  let steps = 0;
  let decodeMs = 0;
  let stepStart = 0;
  for (;;) {
    if (o.signal?.aborted) throw abort();
    // The repetition penalty and the grammar change `logits` in place; only then is a copy needed.
    const raw = o.logprobs ? (grammar || (o.repetitionPenalty ?? 1) !== 1 ? logits.slice() : logits) : undefined;
    // The grammar, and while the model may be writing its assistant header, the header's next id.
    const next = text?.nextHeaderId;
    await grammar?.mask(logits, next === undefined ? undefined : { next, started: (text?.headerIds ?? 0) > 0 });
    const id = sampler.next(logits);
    if (ids.length === 0) firstTokenMs = now() - t0;
    else decodeMs += now() - stepStart;
    if (stopIds.has(id)) {
      finishReason = 'stop';
      break;
    }
    ids.push(id);
    const piece = text?.push(id) ?? { text: '', stopped: false, header: false };
    if (!piece.header) grammar?.accept(id);
    const token: GeneratedToken = { id, text: piece.text, index: ids.length - 1, header: piece.header };
    if (choice !== undefined) token.choice = choice;
    if (raw) token.logprobs = tokenLogprobs(raw, id, o.topLogprobs ?? 0, o.tokenizer);
    o.onToken?.(token);
    yield token;
    if (piece.stopped) {
      finishReason = 'stop';
      break;
    }
    // The header the model writes is consumed outside the budget: maxNewTokens counts the answer.
    if (ids.length - (text?.headerIds ?? 0) >= maxNew) break;
    if (seq.length >= seq.model.maxSequence) {
      finishReason = 'context';
      break;
    }
    if (o.signal?.aborted) throw abort();
    stepStart = now();
    logits = await seq.step(id);
    steps++;
  }
  return {
    ids,
    headerTokens: text?.headerIds ?? 0,
    text: (text?.text() ?? '').trim(),
    finishReason,
    stats: {
      promptTokens,
      generatedTokens: ids.length,
      timeToFirstTokenMs: firstTokenMs,
      prefillTokensPerSecond: promptTokens / (prefillMs / 1000),
      decodeTokensPerSecond: steps > 0 ? steps / (decodeMs / 1000) : 0,
    },
  };
}
