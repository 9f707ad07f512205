// `llava-mini serve` once its flags are parsed (./serve.ts): the server's options from them, then
// start, print where, and drain on a signal.
import { integerOption } from '@llava-mini/core';
import { defaultModelDir, localModel } from '@llava-mini/pipeline/node';
import { type ServerOptions, startServer } from '@llava-mini/server';
import { ProgressView } from './progress.js';

/** The flags as commander gives them (strings; lists for repeatable flags). */
export interface ServeFlags {
  model?: string;
  modelId?: string;
  host: string;
  port: string;
  workers: string;
  isolation: string;
  parallel?: string;
  device: string;
  queue: string;
  apiKey?: string;
  bodyLimit?: string;
  maxImages?: string;
  maxImagePixels?: string;
  maxFrames?: string;
  maxTokens?: string;
  allowRemoteMedia?: string[];
  allowMediaAddress?: string[];
  remoteMediaCa?: string;
  allowedMediaPath?: string[];
  cors?: string[];
  drainTimeout?: string;
  headersTimeout?: string;
  requestTimeout?: string;
  keepAliveTimeout?: string;
  maxConnections?: string;
}

function int(v: string | undefined, flag: string): number | undefined {
  return v === undefined ? undefined : integerOption(v, flag);
}

const ms = (v: string | undefined, flag: string) => (v === undefined ? undefined : (int(v, flag) as number) * 1000);

const list = (v: string[] | undefined) => v?.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);

function serveOptions(flags: ServeFlags): ServerOptions {
  return {
    model: flags.model ?? defaultModelDir(),
    modelId: flags.modelId,
    host: flags.host,
    port: int(flags.port, '--port'),
    workers: int(flags.workers, '--workers'),
    isolation: flags.isolation as ServerOptions['isolation'],
    parallel: int(flags.parallel, '--parallel'),
    device: flags.device as ServerOptions['device'],
    queue: int(flags.queue, '--queue'),
    apiKey: flags.apiKey ?? process.env.LLAVA_MINI_API_KEY,
    bodyLimit: int(flags.bodyLimit, '--body-limit'),
    maxImages: int(flags.maxImages, '--max-images'),
    maxImagePixels: int(flags.maxImagePixels, '--max-image-pixels'),
    maxVideoFrames: int(flags.maxFrames, '--max-frames'),
    defaultMaxTokens: int(flags.maxTokens, '--max-tokens'),
    remoteMediaHosts: list(flags.allowRemoteMedia),
    remoteMediaAllowAddresses: list(flags.allowMediaAddress),
    remoteMediaCa: flags.remoteMediaCa,
    allowedMediaPaths: list(flags.allowedMediaPath),
    corsOrigins: list(flags.cors),
    drainTimeoutMs: ms(flags.drainTimeout, '--drain-timeout'),
    headersTimeoutMs: ms(flags.headersTimeout, '--headers-timeout'),
    requestTimeoutMs: ms(flags.requestTimeout, '--request-timeout'),
    keepAliveTimeoutMs: ms(flags.keepAliveTimeout, '--keep-alive-timeout'),
    maxConnections: int(flags.maxConnections, '--max-connections'),
    logger: (m) => process.stderr.write(`${m}\n`),
  };
}

/** Start, print where, and drain on SIGTERM/SIGINT: running requests finish, new ones get 503, then exit 0. */
export async function serveCommand(flags: ServeFlags): Promise<void> {
  const options = serveOptions(flags);
  // A hub id or URL is fetched (and converted) here, once, before the workers each load the folder.
  const view = new ProgressView();
  const named = options.model;
  options.model = await localModel(named, { target: options.device === 'cuda' || options.device === 'webgpu' ? options.device : 'cpu', onProgress: view.callback }).finally(() => view.stop());
  if (options.model !== named) options.modelId ??= named;
  if (options.remoteMediaCa) {
    const fs = await import('node:fs');
    options.remoteMediaCa = fs.readFileSync(options.remoteMediaCa, 'utf8');
  }
  const server = await startServer(options);
  const log = (m: string) => process.stderr.write(`llava-mini serve: ${m}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: finishing ${server.pool.running + server.pool.queued} request(s), refusing new ones`);
    void server.drain().then(() => {
      log('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log(`listening on ${server.url} (model '${server.options.modelId}', ${server.options.workers} worker(s) x ${server.options.parallel} request(s), loading...)`);
  try {
    await server.ready;
  } catch (err) {
    // A signal during the load stops the workers loading: that is the stop asked for, not a failure.
    if (stopping) return;
    await server.close();
    throw err;
  }
  if (stopping) return;
  log(`ready: POST ${server.url}/v1/chat/completions`);
}
