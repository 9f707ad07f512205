// @llava-mini/server: an OpenAI-compatible HTTP server over a pool of workers (threads or
// processes) that each hold a loaded model (`llava-mini serve` in @llava-mini/cli starts it).
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { ServerMetrics } from './metrics.js';
import { type ResolvedOptions, resolveOptions, type ServerOptions } from './options.js';
import { WorkerPool } from './pool.js';

export { resolveOptions, type ResolvedOptions, type ServerOptions } from './options.js';
export { errorBody, type ApiError } from './errors.js';
export type { Isolation } from './worker-handle.js';
export { hostAllowed, RemoteMediaFetcher, type RemoteMediaPolicy } from './remote-media.js';

export interface ServerHandle {
  /** `http://host:port` the server listens on. */
  url: string;
  options: ResolvedOptions;
  app: FastifyInstance;
  pool: WorkerPool;
  /** Resolves once every worker has loaded the model (/health turns 200). */
  ready: Promise<void>;
  /** Refuse new requests (503), finish the accepted ones, stop the workers, close the port. */
  drain(): Promise<void>;
  /** Stop at once: pending requests get 503. */
  close(): Promise<void>;
}

/**
 * Listen first, then load: /health answers 503 while the workers load the model and 200 once they
 * have. `await handle.ready` to wait for that (it rejects if a worker cannot load the model).
 */
export async function startServer(options: ServerOptions): Promise<ServerHandle> {
  const o = resolveOptions(options);
  const metrics = new ServerMetrics(() => pool.stats());
  const update = () => {
    metrics.queueDepth.set(pool.queued);
    metrics.running.set(pool.running);
    metrics.workersReady.set(pool.readyWorkers);
  };
  const pool = new WorkerPool(
    { model: o.model, device: o.device, maxVideoFrames: o.maxVideoFrames, maxImagePixels: o.maxImagePixels, workers: o.workers, parallel: o.parallel, queue: o.queue, isolation: o.isolation },
    (m) => o.logger?.(m),
    () => update(),
    () => metrics.cancelled.inc(),
    () => metrics.workerRestarts.inc(),
  );
  const app = buildApp(o, pool, metrics);
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await pool.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    options: o,
    app,
    pool,
    ready: pool.ready,
    drain: () =>
      (closing ??= (async () => {
        await pool.drain(o.drainTimeoutMs);
        await app.close();
      })()),
    close: () =>
      (closing ??= (async () => {
        await pool.close();
        await app.close();
      })()),
  };
}
