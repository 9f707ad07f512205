// OpenAI chat-completion requests: the types, and their checking and translation into what a
// Conversation takes (pictures, system prompt, earlier turns, the question, generation options).
// Pure functions, no model: the server runs them on its HTTP thread to refuse bad requests early.
import type { ChatTurn } from '@llava-mini/prefusion';
import { InvalidOptionError } from '@llava-mini/core';
import { MAX_CHOICES, MAX_TOP_LOGPROBS, type ResponseFormat } from '@llava-mini/llm';

export interface TextPart {
  type: 'text';
  text: string;
}
/** `url`: a data URL, an http(s) URL, a file path or a file: URL (what the platform's `ask` reads). */
export interface ImageUrlPart {
  type: 'image_url';
  image_url: { url: string; detail?: 'auto' | 'low' | 'high' };
}
/** vLLM's video part; `url` as for images (Node reads files and file: URLs). */
export interface VideoUrlPart {
  type: 'video_url';
  video_url: { url: string };
}
/** Not OpenAI: any picture `ask()` accepts in this environment (bytes, ImageData, a canvas...). */
export interface ImagePart {
  type: 'image';
  image: unknown;
}
export type ContentPart = TextPart | ImageUrlPart | VideoUrlPart | ImagePart;

export type ChatCompletionMessage =
  | { role: 'system' | 'developer'; content: string | TextPart[]; name?: string }
  | { role: 'user'; content: string | ContentPart[]; name?: string }
  | { role: 'assistant'; content?: string | TextPart[] | null; name?: string; refusal?: string | null };

export interface ChatCompletionCreateParams {
  messages: ChatCompletionMessage[];
  /** Echoed in the response (the server refuses ids it does not serve). */
  model?: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  /** Default 0 (greedy, as the reference), not OpenAI's 1. */
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  /** Up to 4 texts that end the answer (not included). */
  stop?: string | string[] | null;
  n?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  logprobs?: boolean | null;
  /** 0-20 most likely tokens at each position, with `logprobs: true`. */
  top_logprobs?: number | null;
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null } } | null;
  user?: string;
  metadata?: Record<string, string> | null;
  store?: boolean | null;
  service_tier?: string | null;
  /** vLLM's extra sampling parameters. */
  top_k?: number | null;
  repetition_penalty?: number | null;
  /** vLLM's: the end-of-turn token does not end the answer; it runs to max_tokens (or the context). */
  ignore_eos?: boolean | null;
}

/** An OpenAI request the runtime refuses; `param` names the field, as OpenAI's error object does. */
export class RequestError extends InvalidOptionError {
  constructor(
    readonly param: string | null,
    message: string,
    readonly type: 'invalid_request_error' = 'invalid_request_error',
  ) {
    super(message);
  }
}

/** A picture of the request, in order; `kind` says whether it is read as an image or a video. */
export interface MediaRef {
  kind: 'image' | 'video';
  /** The URL/path string of an image_url or video_url part, or an `image` part's value. */
  source: unknown;
  /** Where it was, for error messages: `messages[2].content[1]`. */
  param: string;
}

export interface ParsedRequest {
  system?: string;
  history: ChatTurn[];
  question: string;
  media: MediaRef[];
  stream: boolean;
  includeUsage: boolean;
  model?: string;
  generation: {
    maxNewTokens?: number;
    temperature?: number;
    topP?: number;
    topK?: number;
    seed?: number;
    repetitionPenalty?: number;
    stopStrings?: string[];
    /** Empty when the end-of-turn ids must not end the answer (vLLM's `ignore_eos`). */
    stopIds?: number[];
    logprobs?: boolean;
    topLogprobs?: number;
    /** Answers to make from the one prompt. */
    n?: number;
    responseFormat?: ResponseFormat;
  };
}

/** Accepted and without effect here (OpenAI bookkeeping). */
const IGNORED = new Set(['user', 'metadata', 'store', 'service_tier', 'parallel_tool_calls']);
const KNOWN = new Set([
  'messages', 'model', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stop',
  'n', 'frequency_penalty', 'presence_penalty', 'logprobs', 'top_logprobs', 'response_format', 'top_k', 'repetition_penalty', 'ignore_eos', ...IGNORED,
]);
const UNSUPPORTED = new Set(['tools', 'tool_choice', 'functions', 'function_call', 'logit_bias', 'audio', 'modalities', 'prediction', 'reasoning_effort', 'web_search_options']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
/** A value from the body, as an error quotes it: a string or number as JSON, anything else by its type (JSON.stringify of a value nested 100,000 deep overflows the stack). */
const quoted = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? JSON.stringify(v) : typeName(v));

function optional<T>(o: Record<string, unknown>, key: string, check: (v: unknown) => v is T, want: string): T | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw new RequestError(key, `'${key}' must be ${want}, got ${typeName(v) === 'number' || typeName(v) === 'string' ? JSON.stringify(v) : typeName(v)}`);
  return v;
}
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isString = (v: unknown): v is string => typeof v === 'string';

/** The text of a string-or-text-parts content; refuses pictures where only text may go. */
function textOf(content: unknown, param: string, role: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new RequestError(param, `'${param}' must be a string or an array of content parts, got ${typeName(content)}`);
  return content
    .map((part, i) => {
      if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
        throw new RequestError(`${param}[${i}]`, `${role} messages take text parts only ({ type: 'text', text }); '${param}[${i}]' is not one`);
      }
      return part.text;
    })
    .join('\n');
}

function userContent(content: unknown, param: string, media: MediaRef[]): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new RequestError(param, `'${param}' must be a string or an array of content parts, got ${typeName(content)}`);
  const texts: string[] = [];
  content.forEach((part, i) => {
    const at = `${param}[${i}]`;
    if (!isObject(part)) throw new RequestError(at, `'${at}' must be a content part object, got ${typeName(part)}`);
    const url = (key: 'image_url' | 'video_url') => {
      const inner = part[key];
      if (!isObject(inner) || typeof inner.url !== 'string' || inner.url === '') throw new RequestError(`${at}.${key}.url`, `'${at}.${key}.url' must be a non-empty string`);
      return inner.url;
    };
    switch (part.type) {
      case 'text':
        if (typeof part.text !== 'string') throw new RequestError(`${at}.text`, `'${at}.text' must be a string`);
        texts.push(part.text);
        return;
      case 'image_url':
        media.push({ kind: 'image', source: url('image_url'), param: `${at}.image_url.url` });
        return;
      case 'video_url':
        media.push({ kind: 'video', source: url('video_url'), param: `${at}.video_url.url` });
        return;
      case 'image':
        if (part.image === undefined || part.image === null) throw new RequestError(`${at}.image`, `'${at}.image' is missing`);
        media.push({ kind: 'image', source: part.image, param: `${at}.image` });
        return;
      default:
        throw new RequestError(`${at}.type`, `content part type ${quoted(part.type)} is not supported (text, image_url, video_url are)`);
    }
  });
  return texts.join('\n');
}

/**
 * The conversation in the request as LLaVA-Mini's template takes it: the system messages joined,
 * user/assistant turns (consecutive messages of one role joined), the last user message as the
 * question. LLaVA-Mini has one visual input per conversation, placed with the first user message:
 * every picture of the request goes there, in order.
 */
function parseMessages(messages: unknown): Pick<ParsedRequest, 'system' | 'history' | 'question' | 'media'> {
  if (!Array.isArray(messages) || messages.length === 0) throw new RequestError('messages', `'messages' must be a non-empty array, got ${typeName(messages)}`);
  const systems: string[] = [];
  const media: MediaRef[] = [];
  const turns: { role: 'user' | 'assistant'; text: string }[] = [];
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw new RequestError(at, `'${at}' must be an object, got ${typeName(m)}`);
    for (const key of Object.keys(m)) {
      if (!['role', 'content', 'name', 'refusal'].includes(key)) {
        throw new RequestError(`${at}.${key}`, key === 'tool_calls' || key === 'tool_call_id' || key === 'function_call' ? `tool calls are not supported ('${at}.${key}')` : `unrecognized field '${at}.${key}'`);
      }
    }
    const role = m.role;
    if (role === 'system' || role === 'developer') {
      systems.push(textOf(m.content, `${at}.content`, String(role)));
      return;
    }
    let text: string;
    if (role === 'user') text = userContent(m.content, `${at}.content`, media);
    else if (role === 'assistant') text = m.content === undefined || m.content === null ? '' : textOf(m.content, `${at}.content`, 'assistant');
    else if (role === 'tool' || role === 'function') throw new RequestError(`${at}.role`, `'${role}' messages are not supported (no tool calls)`);
    else throw new RequestError(`${at}.role`, `'${at}.role' must be system, developer, user or assistant, got ${quoted(role)}`);
    const last = turns[turns.length - 1];
    if (last && last.role === role) last.text = `${last.text}\n\n${text}`;
    else turns.push({ role, text });
  });
  if (turns.length === 0 || turns[turns.length - 1].role !== 'user') throw new RequestError('messages', 'the last message (after any system messages) must be a user message');
  if (turns[0].role !== 'user') throw new RequestError('messages', 'the conversation must start with a user message (after any system messages)');
  const history: ChatTurn[] = [];
  for (let i = 0; i + 1 < turns.length; i += 2) history.push({ user: turns[i].text, assistant: turns[i + 1].text });
  const videos = media.filter((m) => m.kind === 'video');
  if (videos.length > 1 || (videos.length === 1 && media.length > 1)) {
    throw new RequestError(videos[videos.length - 1].param, 'a request takes one video, or images, not both or several videos (LLaVA-Mini has one visual input per conversation)');
  }
  return { system: systems.length ? systems.join('\n\n') : undefined, history, question: turns[turns.length - 1].text, media };
}

/** OpenAI's response_format as the generation takes it (the schema itself is checked when it compiles). */
function parseResponseFormat(format: Record<string, unknown> | undefined): ResponseFormat | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.type !== 'json_schema') throw new RequestError('response_format.type', `response_format.type must be 'text', 'json_object' or 'json_schema', got ${quoted(format.type)}`);
  const spec = format.json_schema;
  if (!isObject(spec)) throw new RequestError('response_format.json_schema', "'response_format.json_schema' must be an object with a name and a schema");
  if (typeof spec.name !== 'string' || !/^[\w-]{1,64}$/.test(spec.name)) throw new RequestError('response_format.json_schema.name', "'response_format.json_schema.name' must be 1-64 letters, digits, _ or -");
  const schema = spec.schema ?? {};
  if (!isObject(schema)) throw new RequestError('response_format.json_schema.schema', "'response_format.json_schema.schema' must be a JSON schema object");
  const strict = optional(spec, 'strict', isBool, 'a boolean');
  return { type: 'json_schema', schema, strict };
}

/** Check an OpenAI chat-completion request and translate it; throws RequestError naming the bad field. */
export function parseChatRequest(body: unknown): ParsedRequest {
  if (!isObject(body)) throw new RequestError(null, `the request body must be a JSON object, got ${typeName(body)}`);
  for (const key of Object.keys(body)) {
    if (UNSUPPORTED.has(key) && body[key] !== null && body[key] !== undefined) throw new RequestError(key, `'${key}' is not supported by this server`);
    if (!KNOWN.has(key) && !UNSUPPORTED.has(key)) throw new RequestError(key, `Unrecognized request argument supplied: ${key}`);
  }
  const parsed = parseMessages(body.messages);
  const model = optional(body, 'model', isString, 'a string');
  const stream = optional(body, 'stream', isBool, 'a boolean') ?? false;
  const streamOptions = optional(body, 'stream_options', isObject, 'an object');
  if (streamOptions && !stream) throw new RequestError('stream_options', "'stream_options' is only allowed when 'stream' is true");
  for (const key of Object.keys(streamOptions ?? {})) if (key !== 'include_usage') throw new RequestError(`stream_options.${key}`, `unrecognized field 'stream_options.${key}'`);
  const includeUsage = streamOptions ? (optional(streamOptions, 'include_usage', isBool, 'a boolean') ?? false) : false;
  const maxTokens = optional(body, 'max_completion_tokens', isInt, 'an integer') ?? optional(body, 'max_tokens', isInt, 'an integer');
  if (maxTokens !== undefined && maxTokens < 1) throw new RequestError(body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens', `the most tokens to generate must be >= 1, got ${maxTokens}`);
  const temperature = optional(body, 'temperature', isNumber, 'a number');
  if (temperature !== undefined && (temperature < 0 || temperature > 2)) throw new RequestError('temperature', `'temperature' must be in [0, 2], got ${temperature}`);
  const topP = optional(body, 'top_p', isNumber, 'a number');
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new RequestError('top_p', `'top_p' must be in (0, 1], got ${topP}`);
  const topK = optional(body, 'top_k', isInt, 'an integer');
  if (topK !== undefined && topK < -1) throw new RequestError('top_k', `'top_k' must be >= 0 (or -1 for all), got ${topK}`);
  const repetitionPenalty = optional(body, 'repetition_penalty', isNumber, 'a number');
  if (repetitionPenalty !== undefined && repetitionPenalty <= 0) throw new RequestError('repetition_penalty', `'repetition_penalty' must be > 0, got ${repetitionPenalty}`);
  const seed = optional(body, 'seed', isInt, 'an integer');
  if (seed !== undefined && seed < 0) throw new RequestError('seed', `'seed' must be >= 0, got ${seed}`);
  const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (!Array.isArray(stop) || stop.length > 4 || !stop.every((s) => typeof s === 'string' && s !== '')) {
    throw new RequestError('stop', "'stop' must be a non-empty string or an array of at most 4 of them");
  }
  // vLLM's extension: generate exactly max_tokens (fixed-length benchmarks, load tests).
  const ignoreEos = optional(body, 'ignore_eos', isBool, 'a boolean') ?? false;
  const n = optional(body, 'n', isInt, 'an integer');
  if (n !== undefined && (n < 1 || n > MAX_CHOICES)) throw new RequestError('n', `'n' must be in [1, ${MAX_CHOICES}], got ${n}`);
  for (const key of ['frequency_penalty', 'presence_penalty'] as const) {
    const v = optional(body, key, isNumber, 'a number');
    if (v !== undefined && v !== 0) throw new RequestError(key, `'${key}' is not supported (only 0); use repetition_penalty`);
  }
  const logprobs = optional(body, 'logprobs', isBool, 'a boolean') ?? false;
  const topLogprobs = optional(body, 'top_logprobs', isInt, 'an integer');
  if (topLogprobs !== undefined && (topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS)) throw new RequestError('top_logprobs', `'top_logprobs' must be in [0, ${MAX_TOP_LOGPROBS}], got ${topLogprobs}`);
  if (topLogprobs !== undefined && !logprobs) throw new RequestError('top_logprobs', "'top_logprobs' needs 'logprobs' to be true");
  const responseFormat = parseResponseFormat(optional(body, 'response_format', isObject, 'an object'));
  return {
    ...parsed,
    model,
    stream,
    includeUsage,
    generation: {
      maxNewTokens: maxTokens,
      temperature,
      topP,
      topK: topK === -1 ? 0 : topK,
      seed,
      repetitionPenalty,
      stopStrings: stop.length ? (stop as string[]) : undefined,
      stopIds: ignoreEos ? [] : undefined,
      logprobs: logprobs || undefined,
      topLogprobs,
      n,
      responseFormat,
    },
  };
}
