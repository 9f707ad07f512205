// `model.chat.completions.create(...)`: OpenAI's chat-completions API in process (as WebLLM has it
// in the page), built only on the public chat()/ask() API. One request = one fresh conversation
// seeded with the request's earlier turns: the API is stateless, as OpenAI's is.
import { type GeneratedToken, SchemaError, type TokenLogprob } from '@llava-mini/llm';
import type { Answer } from './answer.js';
import { type ChatCompletionCreateParams, type MediaRef, parseChatRequest, type ParsedRequest, RequestError } from './completions-request.js';
import type { AskChoice, AskResult, AskTimings } from './ask-result.js';
import { type AskOptions, askOnce, type ChatOptions, type Conversation } from './conversation.js';

export interface CompletionUsage {
  /** Positions the prompt took in the LLM (text tokens plus vision tokens). */
  prompt_tokens: number;
  /** The answer's tokens, what max_tokens counts: not the assistant header the model writes (see maxNewTokens), nor the stop token. */
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length';

/** A token with its log-probability, in OpenAI's shape. */
export interface ChatCompletionTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

/** With `logprobs: true`: one entry per answer token (the assistant header the model writes is not the answer). */
export interface ChoiceLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: null;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: { role: 'assistant'; content: string; refusal: null }; logprobs: ChoiceLogprobs | null; finish_reason: FinishReason }[];
  usage: CompletionUsage;
  /** Not OpenAI: where the time went (input decode, each stage, time to first token, tokens/s). */
  timings: AskTimings;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: { role?: 'assistant'; content?: string }; logprobs: ChoiceLogprobs | null; finish_reason: FinishReason | null }[];
  /** With `stream_options.include_usage`: null on every chunk but the last, which has `choices: []`. */
  usage?: CompletionUsage | null;
  timings?: AskTimings;
}

export interface CompletionRequestOptions {
  signal?: AbortSignal;
  onProgress?: AskOptions['onProgress'];
}

/** What completions need of a model: its conversations (LlavaMini.chat). */
export interface ChatSource {
  (input: unknown, options: Pick<ChatOptions, 'system' | 'history' | 'videoStateBytes'>): Pick<Conversation, 'ask' | 'dispose'>;
}

/** The visual input `chat()` takes for the request's pictures: one, several (concatenated), or a video. */
export function mediaInput(media: readonly MediaRef[]): unknown {
  if (media.length === 0) return undefined;
  if (media[0].kind === 'video') return { video: media[0].source };
  return media.length === 1 ? media[0].source : media.map((m) => m.source);
}

let counter = 0;
const completionId = () => `chatcmpl-${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** Every answer of a turn: its choices with n > 1, else itself. */
const choicesOf = (r: AskResult): AskChoice[] => r.choices ?? [r];

/** As OpenAI counts: the prompt once, the tokens of every choice. */
function usageOf(r: AskResult): CompletionUsage {
  const completion = choicesOf(r).reduce((sum, c) => sum + c.ids.length - c.headerTokens, 0);
  return { prompt_tokens: r.llmInputTokens, completion_tokens: completion, total_tokens: r.llmInputTokens + completion };
}

const finishOf = (c: AskChoice): FinishReason => (c.finishReason === 'stop' ? 'stop' : 'length');

/** A schema the grammar engine refused is the request's fault: a RequestError naming the field. */
const requestError = (err: unknown): unknown => (err instanceof SchemaError ? new RequestError('response_format.json_schema.schema', err.message) : err);

const entry = (t: TokenLogprob) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes });

/** A token's OpenAI logprobs entry; none for the assistant header the model writes before its answer. */
function logprobOf(token: GeneratedToken): ChatCompletionTokenLogprob | undefined {
  if (token.header || !token.logprobs) return undefined;
  return { ...entry(token.logprobs), top_logprobs: token.logprobs.top.map(entry) };
}

export class Completions {
  constructor(
    private readonly chat: ChatSource,
    /** The id responses carry when the request names none. */
    private readonly modelId = 'llava-mini',
  ) {}

  /** A whole answer (stream false or absent), or its chunks as they are generated (stream true). */
  create(params: ChatCompletionCreateParams & { stream: true }, options?: CompletionRequestOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: CompletionRequestOptions): Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParams, options?: CompletionRequestOptions): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
  async create(params: ChatCompletionCreateParams, options: CompletionRequestOptions = {}): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const request = parseChatRequest(params);
    return request.stream ? this.stream(request, options) : this.complete(request, options);
  }

  private start(request: ParsedRequest, options: CompletionRequestOptions): Answer<AskResult> {
    // Each request is a fresh conversation, freed when its answer ends (the API is stateless).
    // One request, one turn: no follow-up will carry on from a video's frame states.
    const conversation = this.chat(mediaInput(request.media), { system: request.system, history: request.history, videoStateBytes: 0 });
    return askOnce(conversation, request.question, { ...request.generation, signal: options.signal, onProgress: options.onProgress });
  }

  private async complete(request: ParsedRequest, options: CompletionRequestOptions): Promise<ChatCompletion> {
    const answer = this.start(request, options);
    const contents: ChatCompletionTokenLogprob[][] = Array.from({ length: request.generation.n ?? 1 }, () => []);
    const r = await (async () => {
      if (request.generation.logprobs) {
        for await (const token of answer) {
          const lp = logprobOf(token);
          if (lp) contents[token.choice ?? 0].push(lp);
        }
      }
      return answer.done();
    })().catch((err: unknown) => {
      throw requestError(err);
    });
    return {
      id: completionId(),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.model ?? this.modelId,
      choices: choicesOf(r).map((c, index) => ({
        index,
        message: { role: 'assistant', content: c.text, refusal: null },
        logprobs: request.generation.logprobs ? { content: contents[index], refusal: null } : null,
        finish_reason: finishOf(c),
      })),
      usage: usageOf(r),
      timings: r.timings,
    };
  }

  /**
   * The answer as chunks: per choice a role chunk, one chunk per token that shows text (a token
   * inside a multi-byte character or a held-back stop prefix shows none, and its logprobs go with
   * the next chunk that does) and a finish chunk; then the usage. With n > 1 the choices' chunks
   * interleave as their tokens come. Nothing runs until the first chunk is asked for; leaving the
   * loop early stops the generation.
   */
  private stream(request: ParsedRequest, options: CompletionRequestOptions): AsyncIterable<ChatCompletionChunk> {
    const head = { id: completionId(), object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model: request.model ?? this.modelId };
    const usage = request.includeUsage ? { usage: null } : {};
    const chunk = (index: number, delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null = null, logprobs: ChoiceLogprobs | null = null): ChatCompletionChunk => ({
      ...head,
      choices: [{ index, delta, logprobs, finish_reason: finish }],
      ...usage,
    });
    const n = request.generation.n ?? 1;
    const wantLogprobs = request.generation.logprobs === true;
    const start = () => this.start(request, options);
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* chunks();
        } catch (err) {
          throw requestError(err);
        }
      },
    };
    async function* chunks(): AsyncGenerator<ChatCompletionChunk> {
      const answer = start();
      // A choice's role chunk waits for its first token, so a request that fails (a bad picture, a
      // prompt too long) fails before any chunk: a server can still answer it with an error status.
      const begun = new Set<number>();
      const pending: ChatCompletionTokenLogprob[][] = Array.from({ length: n }, () => []);
      const withLogprobs = (i: number) => (wantLogprobs ? { content: pending[i].splice(0), refusal: null as null } : null);
      for await (const token of answer) {
        const i = token.choice ?? 0;
        if (!begun.has(i)) yield chunk(i, { role: 'assistant', content: '' });
        begun.add(i);
        const lp = logprobOf(token);
        if (lp) pending[i].push(lp);
        if (token.text) yield chunk(i, { content: token.text }, null, withLogprobs(i));
      }
      const r = await answer.done();
      for (const [i, c] of choicesOf(r).entries()) {
        if (!begun.has(i)) yield chunk(i, { role: 'assistant', content: '' });
        if (pending[i].length) yield chunk(i, { content: '' }, null, withLogprobs(i));
        yield chunk(i, {}, finishOf(c));
      }
      if (request.includeUsage) yield { ...head, choices: [], usage: usageOf(r), timings: r.timings };
    }
  }
}
