/**
 * Every failure the library reports on purpose is a `LlavaMiniError` with a stable `code`, so callers
 * can branch on `err.code` (or `instanceof`) instead of parsing messages. Native errors from
 * onnxruntime, sharp or the file system are wrapped with the original kept as `cause`.
 */
export type ErrorCode =
  | 'INVALID_OPTION'
  | 'DEVICE_UNAVAILABLE'
  | 'SAFETENSORS'
  | 'MODEL_FILES'
  | 'HUB'
  | 'CHECKPOINT_MISMATCH'
  | 'UNSUPPORTED_CONFIG'
  | 'GRAPH'
  | 'SESSION'
  | 'IMAGE'
  | 'VIDEO'
  | 'PROMPT_TOO_LONG'
  | 'KV_CACHE_FULL'
  | 'DISPOSED'
  | 'FILE'
  | 'INTERNAL'
  | 'ABORTED';

/** Longest message kept; the rest of a longer one is cut (the `cause` keeps the original error). */
export const MAX_MESSAGE = 1000;

export class LlavaMiniError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    // One bounded line always: a message may quote outside text (a JSON key, a parser's excerpt of a
    // file, a value from a header), and a line break would split a CLI error or a log record in two,
    // a megabyte of quoted input would reprint the file.
    const line = message.replace(/\r\n?|\n/g, '\\n');
    super(line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE)}...` : line, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option or argument has a value the library does not accept. */
export class InvalidOptionError extends LlavaMiniError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_OPTION', message, options);
  }
}

/** The requested device cannot run on this machine; `hint` says what to install or change. */
export class DeviceUnavailableError extends LlavaMiniError {
  readonly device: string;
  readonly reason: string;
  readonly hint: string;
  constructor(device: string, reason: string, hint: string, options?: { cause?: unknown }) {
    super('DEVICE_UNAVAILABLE', `device '${device}' is not available: ${reason}. ${hint}`, options);
    this.device = device;
    this.reason = reason;
    this.hint = hint;
  }
}

/** A safetensors file is malformed: bad header, truncated data, bad offsets, unknown dtype. */
export class SafetensorsError extends LlavaMiniError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('SAFETENSORS', `${file}: ${message}`, options);
    this.file = file;
  }
}

/** A model file is missing or unreadable (a shard named in an index, config.json, an .onnx file). */
export class ModelFilesError extends LlavaMiniError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('MODEL_FILES', `${path}: ${message}`, options);
    this.path = path;
  }
}

/**
 * Fetching a model from the Hugging Face Hub (or a converted folder from a URL) failed: the
 * repository or revision does not exist, is gated without a token, the network failed, a file is
 * not in the cache while offline, or a file downloaded does not match the listed size or hash.
 * `repo` is the hub id or the URL; `status` is the HTTP status where there was one.
 */
export class HubError extends LlavaMiniError {
  readonly repo: string;
  readonly status?: number;
  constructor(repo: string, message: string, options?: { cause?: unknown; status?: number }) {
    super('HUB', `${repo}: ${message}`, options);
    this.repo = repo;
    this.status = options?.status;
  }
}

/** The checkpoint's tensors disagree with its config (a shape, a missing or extra tensor). */
export class CheckpointMismatchError extends LlavaMiniError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHECKPOINT_MISMATCH', message, options);
  }
}

/** A config value this runtime does not implement; `key` names it. */
export class UnsupportedConfigError extends LlavaMiniError {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED_CONFIG', `config '${key}': ${message}`, options);
    this.key = key;
  }
}

/** A graph under construction is invalid (unknown value, duplicate name, bad attribute). */
export class GraphError extends LlavaMiniError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GRAPH', message, options);
  }
}

/** onnxruntime refused to create or run a session; the runtime's message is in `cause`. */
export class SessionError extends LlavaMiniError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SESSION', message, options);
  }
}

/** An image cannot be used: unreadable, corrupt, truncated, an unsupported format, or too many pixels. */
export class ImageError extends LlavaMiniError {
  /** The file path, or a short description of an in-memory input. */
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super('IMAGE', `${source}: ${message}`, options);
    this.source = source;
  }
}

/** A video cannot be decoded, or has no frames. */
export class VideoError extends LlavaMiniError {
  readonly source: string;
  constructor(source: string, message: string, options?: { cause?: unknown }) {
    super('VIDEO', `${source}: ${message}`, options);
    this.source = source;
  }
}

/** The prompt (with its vision tokens) does not fit the model's context window. */
export class PromptTooLongError extends LlavaMiniError {
  readonly tokens: number;
  readonly limit: number;
  constructor(tokens: number, limit: number, what = 'the prompt') {
    super('PROMPT_TOO_LONG', `${what} needs ${tokens} tokens, but the context window holds ${limit}`);
    this.tokens = tokens;
    this.limit = limit;
  }
}

/**
 * The KV caches of a model's conversations would exceed its byte cap even after every idle
 * conversation's cache was evicted: the conversations generating right now need more than the cap.
 */
export class KvCacheFullError extends LlavaMiniError {
  readonly neededBytes: number;
  readonly limitBytes: number;
  constructor(neededBytes: number, limitBytes: number) {
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    super('KV_CACHE_FULL', `the KV caches of the conversations generating now need ${mb(neededBytes)}, over the model's cap of ${mb(limitBytes)} (kvCacheBytes): raise the cap or run fewer conversations at once`);
    this.neededBytes = neededBytes;
    this.limitBytes = limitBytes;
  }
}

/** A conversation (or model) was used after dispose(). */
export class DisposedError extends LlavaMiniError {
  constructor(what: string) {
    super('DISPOSED', `${what} was disposed`);
  }
}

/** The operation was stopped through an AbortSignal. */
export class AbortError extends LlavaMiniError {
  constructor(message = 'the operation was aborted') {
    super('ABORTED', message);
  }
}

/** A file or folder (not a model file) cannot be read, written or created: `--out`, `--prompt-file`, a temp folder. */
export class FileError extends LlavaMiniError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('FILE', `${path}: ${message}`, options);
    this.path = path;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Node's file-system error codes in words (the raw message repeats the syscall and path). */
const ERRNO_WORDS: Record<string, string> = {
  ENOENT: 'does not exist',
  ENOTDIR: 'has a file where a folder is expected in its path',
  EISDIR: 'is a folder, not a file',
  EEXIST: 'already exists',
  ENOTEMPTY: 'is a folder that is not empty',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'is on a read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'the name is too long',
  EBUSY: 'is busy',
  ELOOP: 'has too many symbolic links in its path',
  EIO: 'input/output error',
};

interface ErrnoLike {
  code?: unknown;
  path?: unknown;
  dest?: unknown;
  syscall?: unknown;
}

/**
 * An error from Node's file system (it carries `code`, `syscall` and usually `path`) as a one-line
 * FileError naming the path and what was tried; undefined for any other error.
 */
export function fileSystemError(err: unknown): FileError | undefined {
  const e = err as ErrnoLike | null;
  if (!(err instanceof Error) || typeof e?.code !== 'string' || typeof e.syscall !== 'string' || !/^E[A-Z]+$/.test(e.code)) return undefined;
  const where = typeof e.path === 'string' ? e.path : '(unknown path)';
  // A recursive mkdir says EEXIST where a file sits at (or above) the folder to be made.
  const words = e.code === 'EEXIST' && e.syscall === 'mkdir' ? 'is a file, not a folder' : (ERRNO_WORDS[e.code] ?? err.message.split('\n')[0]);
  const target = typeof e.dest === 'string' ? ` -> ${e.dest}` : '';
  return new FileError(`${where}${target}`, `${e.syscall} failed: ${words} (${e.code})`, { cause: err });
}

/**
 * Any error as a LlavaMiniError: typed ones pass through, file-system errors become FileError, and
 * anything else keeps its first line under `what` (the operation that failed).
 */
export function asLlavaMiniError(err: unknown, what: string): LlavaMiniError {
  if (err instanceof LlavaMiniError) return err;
  const fsError = fileSystemError(err);
  if (fsError) return fsError;
  return new InternalError(`${what} failed: ${errorMessage(err).split('\n')[0]}`, { cause: err });
}

/** A failure the library did not foresee (a bug, or a runtime's untyped error); the original is `cause`. */
export class InternalError extends LlavaMiniError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERNAL', message, options);
  }
}
