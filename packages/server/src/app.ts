// The HTTP face: OpenAI's routes on Fastify. This thread checks, authorizes, resolves pictures and
// queues; the graphs run in the pool's workers, so /health answers at once while they are busy.
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import cors from '@fastify/cors';
import { LlavaMiniError, nestedDeeperThan } from '@llava-mini/core';
import { type ChatCompletion, type ChatCompletionChunk, parseChatRequest, type ParsedRequest } from '@llava-mini/pipeline';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type ApiError, errorBody, fromFrameworkError, fromLibraryError, HttpError, httpError, serializeError } from './errors.js';
import { MAX_BODY_DEPTH } from './limits.js';
import { resolveMedia, withResolvedMedia } from './media.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { WorkerPool } from './pool.js';
import { RemoteMediaFetcher } from './remote-media.js';

const MODALITIES = { input: ['text', 'image', 'video'], output: ['text'] };

const digest = (s: string) => createHash('sha256').update(s).digest();

function apiErrorOf(err: unknown): ApiError {
  if (err instanceof HttpError) return err.api;
  const e = err as { statusCode?: number; code?: string; message: string };
  if (typeof e?.code === 'string' && e.code.startsWith('FST_')) return fromFrameworkError(e);
  if (err instanceof LlavaMiniError) return fromLibraryError(serializeError(err));
  return fromFrameworkError({ ...e, statusCode: e?.statusCode ?? 500, message: String(e?.message ?? err) });
}

function sendError(reply: FastifyReply, e: ApiError): FastifyReply {
  if (e.retryAfter !== undefined) reply.header('retry-after', String(e.retryAfter));
  // The rest of a body too large is not read: the connection closes after the answer, so a client
  // sending 100 MB stops being read at the limit instead of having the rest drained for it.
  if (e.status === 413) reply.header('connection', 'close');
  return reply.code(e.status).send(errorBody(e));
}

/**
 * Node's HTTP server with the limits that keep slow and idle clients from holding it: headers and
 * whole requests must arrive in time (slow-loris gets 408), idle keep-alive connections close, and
 * connections past the cap are dropped as they arrive. Node checks the two request timeouts only every
 * connectionsCheckingInterval (30 s by default), so that follows the shortest of them.
 */
function httpServer(o: ResolvedOptions, handler: http.RequestListener): http.Server {
  const server = http.createServer(
    {
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(o.headersTimeoutMs / 4))),
    },
    handler,
  );
  server.keepAliveTimeout = o.keepAliveTimeoutMs;
  server.maxConnections = o.maxConnections;
  return server;
}

export function buildApp(o: ResolvedOptions, pool: WorkerPool, metrics: ServerMetrics): FastifyInstance {
  const app = Fastify({ bodyLimit: o.bodyLimit, logger: false, return503OnClosing: true, serverFactory: (handler) => httpServer(o, handler) });
  const remote =
    o.remoteMediaHosts.length > 0
      ? new RemoteMediaFetcher({ hosts: o.remoteMediaHosts, allowAddresses: o.remoteMediaAllowAddresses, ca: o.remoteMediaCa, maxBytes: o.remoteMediaMaxBytes, timeoutMs: o.remoteMediaTimeoutMs })
      : undefined;
  const key = o.apiKey ? digest(o.apiKey) : undefined;

  if (o.corsOrigins.length > 0) void app.register(cors, { origin: o.corsOrigins.includes('*') ? true : o.corsOrigins, methods: ['GET', 'POST'] });

  app.setErrorHandler((err, _req, reply) => sendError(reply, apiErrorOf(err)));
  app.setNotFoundHandler((req, reply) => sendError(reply, { status: 404, type: 'not_found_error', code: 'unknown_url', param: null, message: `no route ${req.method} ${req.url}` }));

  app.addHook('onRequest', async (req) => {
    if (!key || req.url === '/health' || req.method === 'OPTIONS') return;
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!given || !timingSafeEqual(digest(given), key)) {
      throw httpError(401, 'authentication_error', 'invalid_api_key', given ? 'Incorrect API key provided' : 'You did not provide an API key (Authorization: Bearer KEY)');
    }
  });

  app.addHook('onRequest', async (req) => {
    // Before the body is read: only JSON is parsed (Fastify would also take text/plain as a string).
    // (A POST to a route that does not exist gets its 404, whatever it carries.)
    if (req.method !== 'POST' || req.routeOptions.url === undefined) return;
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      throw httpError(415, 'invalid_request_error', 'unsupported_media_type', `the body must be JSON (content-type: application/json), got ${type ? JSON.stringify(type.slice(0, 100)) : 'no content-type'}`);
    }
  });

  app.addHook('preValidation', async (req) => {
    if (req.body !== undefined && nestedDeeperThan(req.body, MAX_BODY_DEPTH)) {
      throw httpError(400, 'invalid_request_error', 'invalid_json', `the request body nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep`);
    }
  });

  app.get('/health', async (_req, reply) => {
    // Serving only while a worker is loaded: while the only one is being replaced, or none could be, a load balancer should look elsewhere.
    const serving = pool.state === 'ready' && pool.readyWorkers > 0;
    const status = pool.state !== 'ready' ? pool.state : serving ? 'ok' : pool.hasWorkers ? 'restarting' : 'no_workers';
    return reply.code(serving ? 200 : 503).send({ status, workers: pool.readyWorkers, running: pool.running, queued: pool.queued });
  });

  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));

  const modelObject = () => ({ id: o.modelId, object: 'model', created: 0, owned_by: 'llava-mini', modalities: MODALITIES, input_modalities: MODALITIES.input });
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject()] }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    if (req.params.id !== o.modelId) throw httpError(404, 'invalid_request_error', 'model_not_found', `The model '${req.params.id}' does not exist`, { param: 'model' });
    return modelObject();
  });

  app.post('/v1/chat/completions', (req, reply) => completion(req, reply));

  async function completion(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const t0 = performance.now();
    let stream = false;
    let counted = false;
    const count = (status: number) => {
      if (!counted) metrics.requests.inc({ status: String(status), stream: String(stream) });
      counted = true;
    };
    const fail = (err: unknown) => {
      const e = apiErrorOf(err);
      count(e.status);
      if (!reply.sent && !reply.raw.headersSent) sendError(reply, e);
      else if (!reply.raw.writableEnded) reply.raw.end(`data: ${JSON.stringify(errorBody(e))}\n\n`);
    };
    let parsed: ParsedRequest;
    try {
      const notServing = pool.state === 'ready' ? undefined : pool.refusal();
      if (notServing) throw notServing;
      parsed = parseChatRequest(req.body);
      stream = parsed.stream;
      if (parsed.model !== undefined && parsed.model !== o.modelId) throw httpError(404, 'invalid_request_error', 'model_not_found', `The model '${parsed.model}' does not exist (this server has '${o.modelId}')`, { param: 'model' });
      // A full queue refuses before any picture is fetched or decoded.
      const busy = pool.refusal();
      if (busy) throw busy;
    } catch (err) {
      return fail(err);
    }

    // The client going away (closing the connection) cancels the request wherever it is: fetching
    // its pictures, queued, or generating.
    const abort = new AbortController();
    let cancelJob = () => {};
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished) return;
      abort.abort();
      cancelJob();
      count(499);
    });

    const media = await resolveMedia(parsed.media, o, remote, abort.signal).catch((err: unknown) => err as Error);
    if (media instanceof Error) return abort.signal.aborted ? undefined : fail(media);
    if (abort.signal.aborted) return media.cleanup();
    const job = { ...withResolvedMedia(req.body as Record<string, unknown>, media.items), model: o.modelId, max_completion_tokens: parsed.generation.maxNewTokens ?? o.defaultMaxTokens, max_tokens: undefined };

    let startedAt = t0;
    let firstChunk = true;
    const includeUsage = parsed.includeUsage;
    const record = (usage: { prompt_tokens: number; completion_tokens: number }, timings: { decodeTokensPerSecond: number }) => {
      count(200);
      metrics.duration.observe((performance.now() - t0) / 1000);
      metrics.promptTokens.inc(usage.prompt_tokens);
      metrics.generatedTokens.inc(usage.completion_tokens);
      if (timings.decodeTokensPerSecond > 0) metrics.decodeSpeed.observe(timings.decodeTokensPerSecond);
    };
    const onChunk = (chunk: ChatCompletionChunk) => {
      if (firstChunk) {
        metrics.ttft.observe((performance.now() - t0) / 1000);
        // Headers wait for the first chunk (the first token), so a request failing before it gets a real status.
        reply.hijack();
        reply.raw.writeHead(200, { ...(reply.getHeaders() as Record<string, string>), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
      }
      firstChunk = false;
      if (chunk.choices.length === 0 && chunk.usage) {
        // The worker always reports usage; the client gets it only if it asked.
        record(chunk.usage, chunk.timings as { decodeTokensPerSecond: number });
        if (!includeUsage) return;
      } else if (!includeUsage) delete chunk.usage;
      reply.raw.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };

    await new Promise<void>((resolve) => {
      const settle = () => {
        void media.cleanup();
        resolve();
      };
      try {
        const cancel = pool.submit(job, media.transfer, {
          onStart: () => {
            startedAt = performance.now();
          },
          onChunk,
          onDone: (completion?: ChatCompletion) => {
            if (completion) {
              metrics.ttft.observe((startedAt - t0 + completion.timings.timeToFirstTokenMs) / 1000);
              record(completion.usage, completion.timings);
              void reply.code(200).send(completion);
            } else reply.raw.end('data: [DONE]\n\n');
            settle();
          },
          onError: (e: ApiError) => {
            if (!abort.signal.aborted) fail(new HttpError(e));
            settle();
          },
        });
        cancelJob = () => {
          cancel();
          settle();
        };
        if (abort.signal.aborted) cancelJob();
      } catch (err) {
        fail(err);
        settle();
      }
    });
  }

  return app;
}
