// OpenAI's error object `{ error: { message, type, param, code } }` and the status of each failure.
import { errorMessage, LlavaMiniError } from '@llava-mini/core';

export interface ApiError {
  status: number;
  message: string;
  type: 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';
  param: string | null;
  code: string | null;
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
}

/** A failure the server itself decides (auth, routing, queue, lifecycle), thrown from handlers. */
export class HttpError extends Error {
  constructor(readonly api: ApiError) {
    super(api.message);
  }
}

export const httpError = (status: number, type: ApiError['type'], code: string | null, message: string, extra: Partial<ApiError> = {}) =>
  new HttpError({ status, type, code, message, param: null, ...extra });

/** An error as it crosses from a worker: the LlavaMiniError's class, code and message, and `param`. */
export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  param?: string | null;
}

export function serializeError(err: unknown): SerializedError {
  const e = err as { name?: string; code?: string; param?: string | null };
  return { name: e?.name ?? 'Error', code: err instanceof LlavaMiniError ? err.code : undefined, message: errorMessage(err), param: e?.param ?? null };
}

/** The library's typed errors as HTTP answers: bad input is the client's (400), anything else ours (500). */
export function fromLibraryError(e: SerializedError): ApiError {
  const bad = (code: string | null, param = e.param ?? null): ApiError => ({ status: 400, type: 'invalid_request_error', code, param, message: e.message });
  switch (e.code) {
    case 'INVALID_OPTION':
      return bad(e.name === 'RequestError' ? 'invalid_value' : 'invalid_option');
    case 'IMAGE':
      return bad('invalid_image');
    case 'VIDEO':
      return bad('invalid_video');
    case 'PROMPT_TOO_LONG':
      return bad('context_length_exceeded', 'messages');
    default:
      return { status: 500, type: 'server_error', code: e.code ?? null, param: null, message: e.message };
  }
}

/** Fastify's own failures (malformed JSON, body too large, wrong content type) in OpenAI's shape. */
export function fromFrameworkError(err: { statusCode?: number; code?: string; message: string }): ApiError {
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
  if (status === 413) return { status, type: 'invalid_request_error', code: 'request_too_large', param: null, message: `the request body is larger than the server's limit (${err.message.replace(/^.*?:\s*/, '')})` };
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || /JSON/.test(err.message)) {
    return { status: 400, type: 'invalid_request_error', code: 'invalid_json', param: null, message: `the body is not valid JSON: ${err.message}` };
  }
  if (status < 500) return { status, type: 'invalid_request_error', code: err.code ?? null, param: null, message: err.message };
  return { status, type: 'server_error', code: null, param: null, message: 'internal server error' };
}

export const errorBody = (e: ApiError) => ({ error: { message: e.message, type: e.type, param: e.param, code: e.code } });
