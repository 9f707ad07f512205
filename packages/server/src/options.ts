// The server's settings and their safe defaults: loopback only, bounded bodies, pictures and queue,
// no remote media and no local files unless asked for.
import * as path from 'node:path';
import { InvalidOptionError } from '@llava-mini/core';
import { type Isolation, ISOLATIONS } from './worker-handle.js';

export interface ServerOptions {
  /** A converted model folder (or a small Hugging Face checkpoint, converted in memory by each worker). */
  model: string;
  /** The id clients pass as `model` (default: the folder's name). Requests naming another id get 404. */
  modelId?: string;
  /** Default 127.0.0.1: reachable from this machine only. */
  host?: string;
  /** Default 8080; 0 picks a free port (see `ServerHandle.url`). */
  port?: number;
  /** Workers, each with its own loaded model (default 1). */
  workers?: number;
  /**
   * What a worker runs in (default 'thread'). 'process': each worker is a process of its own, so an
   * abort in native code or the OOM killer takes only that worker, which is replaced; it costs a
   * Node process per worker and a copy of each request's pictures on the way in.
   */
  isolation?: Isolation;
  /**
   * Requests one worker runs at once (default 1): each is its own conversation on the worker's
   * model, and those decoding at the same time share one batched run per step (float32 CPU models).
   */
  parallel?: number;
  /** onnxruntime device of every worker (default 'cpu'). */
  device?: 'auto' | 'cpu' | 'cuda' | 'webgpu' | 'wasm';
  /** Requests waiting for a worker beyond those running (default 16); more get 429. */
  queue?: number;
  /** Bearer token every /v1 route and /metrics require (default: none). */
  apiKey?: string;
  /** Largest request body in bytes (default 20 MiB: a few base64 images); larger gets 413. */
  bodyLimit?: number;
  /** Most pictures in one request (default 8). */
  maxImages?: number;
  /** Most pixels of one image, read from its header before decoding (default 4096 x 4096). */
  maxImagePixels?: number;
  /** Most frames sampled from a video (default 64). */
  maxVideoFrames?: number;
  /** Hosts remote image/video URLs may name (`example.com`, `*.example.com`); empty: remote media off (default). */
  remoteMediaHosts?: string[];
  /** Addresses (IPs or CIDRs) remote media may resolve to although private (default none). */
  remoteMediaAllowAddresses?: string[];
  /** Extra CA certificates (PEM) for remote media, e.g. a company's. */
  remoteMediaCa?: string;
  /** Most bytes of one remote picture (default 20 MiB) and most time to fetch it (default 10 s). */
  remoteMediaMaxBytes?: number;
  remoteMediaTimeoutMs?: number;
  /** Folders local image/video paths may be under (default none: paths refused). */
  allowedMediaPaths?: string[];
  /** Origins allowed by CORS ('*' for any); default none (CORS off). */
  corsOrigins?: string[];
  /** Most tokens a request may generate when it asks for none (default 512). */
  defaultMaxTokens?: number;
  /** How long SIGTERM waits for running requests before exiting anyway (default 30 s). */
  drainTimeoutMs?: number;
  /** Most time a client may take to send its request headers (default 15 s): slow-loris connections are closed with 408. */
  headersTimeoutMs?: number;
  /** Most time a client may take to send its whole request, body included (default 60 s). */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open between requests (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Most open connections (default 1024); the ones past it are closed as they arrive, keeping file descriptors for those already served. */
  maxConnections?: number;
  logger?: (message: string) => void;
}

export type ResolvedOptions = Required<Omit<ServerOptions, 'apiKey' | 'remoteMediaCa' | 'logger'>> & Pick<ServerOptions, 'apiKey' | 'remoteMediaCa' | 'logger'>;

const positiveInt = (v: number | undefined, name: string, fallback: number, min = 1): number => {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < min) throw new InvalidOptionError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  return v;
};

function timeouts(o: ServerOptions) {
  const headersTimeoutMs = positiveInt(o.headersTimeoutMs, 'headersTimeoutMs', 15_000);
  const requestTimeoutMs = positiveInt(o.requestTimeoutMs, 'requestTimeoutMs', Math.max(60_000, headersTimeoutMs));
  // Node refuses a headers timeout longer than the whole request's.
  if (headersTimeoutMs > requestTimeoutMs) throw new InvalidOptionError(`headersTimeoutMs (${headersTimeoutMs}) must not be longer than requestTimeoutMs (${requestTimeoutMs})`);
  return { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs: positiveInt(o.keepAliveTimeoutMs, 'keepAliveTimeoutMs', 5_000) };
}

function isolation(v: Isolation | undefined): Isolation {
  if (v === undefined) return 'thread';
  if (!ISOLATIONS.includes(v)) throw new InvalidOptionError(`isolation must be one of ${ISOLATIONS.join(', ')}, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveOptions(o: ServerOptions): ResolvedOptions {
  if (typeof o.model !== 'string' || o.model === '') throw new InvalidOptionError('a model folder is needed (--model DIR)');
  const port = o.port ?? 8080;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new InvalidOptionError(`port must be in 0..65535, got ${String(port)}`);
  for (const h of o.remoteMediaHosts ?? []) {
    if (!/^(\*\.)?[a-z0-9.-]+$/i.test(h)) throw new InvalidOptionError(`remote media host ${JSON.stringify(h)} must be a host name (example.com or *.example.com)`);
  }
  return {
    model: o.model,
    modelId: o.modelId ?? path.basename(path.resolve(o.model)),
    host: o.host ?? '127.0.0.1',
    port,
    workers: positiveInt(o.workers, 'workers', 1),
    isolation: isolation(o.isolation),
    parallel: positiveInt(o.parallel, 'parallel', 1),
    device: o.device ?? 'cpu',
    queue: positiveInt(o.queue, 'queue', 16, 0),
    apiKey: o.apiKey || undefined,
    bodyLimit: positiveInt(o.bodyLimit, 'bodyLimit', 20 * 1024 * 1024),
    maxImages: positiveInt(o.maxImages, 'maxImages', 8),
    maxImagePixels: positiveInt(o.maxImagePixels, 'maxImagePixels', 4096 * 4096),
    maxVideoFrames: positiveInt(o.maxVideoFrames, 'maxVideoFrames', 64),
    remoteMediaHosts: (o.remoteMediaHosts ?? []).map((h) => h.toLowerCase()),
    remoteMediaAllowAddresses: o.remoteMediaAllowAddresses ?? [],
    remoteMediaCa: o.remoteMediaCa,
    remoteMediaMaxBytes: positiveInt(o.remoteMediaMaxBytes, 'remoteMediaMaxBytes', 20 * 1024 * 1024),
    remoteMediaTimeoutMs: positiveInt(o.remoteMediaTimeoutMs, 'remoteMediaTimeoutMs', 10_000),
    allowedMediaPaths: (o.allowedMediaPaths ?? []).map((p) => path.resolve(p)),
    corsOrigins: o.corsOrigins ?? [],
    defaultMaxTokens: positiveInt(o.defaultMaxTokens, 'defaultMaxTokens', 512),
    drainTimeoutMs: positiveInt(o.drainTimeoutMs, 'drainTimeoutMs', 30_000, 0),
    ...timeouts(o),
    maxConnections: positiveInt(o.maxConnections, 'maxConnections', 1024),
    logger: o.logger,
  };
}
