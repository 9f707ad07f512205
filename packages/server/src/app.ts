// The HTTP face: OpenAI's routes on Fastify. This thread checks, authorizes, resolves pictures and
// queues; the graphs run in the pool's workers, so /health answers at once while they are busy.
import { createHash, timingSafeEqual } from 'node:crypto';
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
  return reply.code(e.status).send(errorBody(e));
}

export function buildApp(o: ResolvedOptions, pool: WorkerPool, metrics: ServerMetrics): FastifyInstance {
  // requestTimeout bounds how long a client may take to send its request (slow-loris).
  const app = Fastify({ bodyLimit: o.bodyLimit, requestTimeout: 60_000, logger: false, return503OnClosing: true });
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

  app.addHook('preValidation', async (req) => {
    if (req.body !== undefined && nestedDeeperThan(req.body, MAX_BODY_DEPTH)) {
      throw httpError(400, 'invalid_request_error', 'invalid_json', `the request body nests arrays and objects more than ${MAX_BODY_DEPTH} levels deep`);
    }
  });

  app.get('/health', async (_req, reply) => {
    const body = { status: pool.state === 'ready' ? 'ok' : pool.state, workers: pool.readyWorkers, running: pool.running, queued: pool.queued };
    return reply.code(pool.state === 'ready' ? 200 : 503).send(body);
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
