// One worker (a thread, or a process with --isolation process): loads the model once, then runs
// chat-completion requests from the HTTP thread through the in-process API, posting chunks back as
// they are generated. Graphs run only here.
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { type ChatCompletionCreateParams, LlavaMini } from '@llava-mini/pipeline/node';
import { serializeError } from './errors.js';
import type { FromWorker, ToWorker, WorkerInit, WorkerStats } from './protocol.js';
import { WORKER_INIT_ENV } from './worker-handle.js';

const inProcess = !parentPort && typeof process.send === 'function' && process.env[WORKER_INIT_ENV] !== undefined;
if (!parentPort && !inProcess) throw new Error('worker.js runs as a worker of @llava-mini/server (a thread, or a process it forks)');
const init = (inProcess ? JSON.parse(process.env[WORKER_INIT_ENV] as string) : workerData) as WorkerInit;
const post = (m: FromWorker) => (inProcess ? process.send?.(m) : parentPort?.postMessage(m));
const onMessage = (f: (m: ToWorker) => void) => (inProcess ? process.on('message', f) : parentPort?.on('message', f));
if (inProcess) {
  // A process whose server is gone (killed, crashed) must not live on holding a model.
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C in a terminal (and a service manager's stop) signals the whole process group: the server
  // drains and then closes its workers, so a worker does not stop on its own before that.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
}

const loading = LlavaMini.fromPretrained(init.model, {
  device: init.device,
  maxFrames: init.maxVideoFrames,
  maxPixels: init.maxImagePixels,
  logger: (message) => post({ type: 'log', message }),
});
let model: LlavaMini | undefined;
loading.then(
  (m) => {
    model = m;
    post({ type: 'ready' });
  },
  (err) => {
    post({ type: 'load-error', error: serializeError(err) });
    process.exit(1);
  },
);

const running = new Map<number, AbortController>();
/** Each running request's promise, settled once its graphs are idle. */
const settled = new Set<Promise<void>>();
let failing = false;

function start(id: number, body: Record<string, unknown>): void {
  const done = run(id, body).finally(() => settled.delete(done));
  settled.add(done);
}

// A throw outside any request's own handling (a bug) leaves this worker's state suspect, so it stops;
// but not at once: a thread torn down while onnxruntime-node runs a session on it aborts the whole
// process (seen in tests with worker.terminate()). Its requests are stopped between two tokens, the
// HTTP thread (told first) fails them and starts a replacement, and the worker exits once idle.
process.on('uncaughtException', (err) => {
  if (failing) return;
  failing = true;
  post({ type: 'fatal', error: serializeError(err) });
  for (const c of running.values()) c.abort();
  // A run that never comes back must not keep a dead worker (and its model) for ever.
  setTimeout(() => process.exit(1), 10_000).unref();
  void Promise.allSettled([...settled])
    .then(() => model?.dispose())
    .finally(() => process.exit(1));
});

async function run(id: number, body: Record<string, unknown>): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  if (failing) controller.abort();
  try {
    const signal = controller.signal;
    const request = body as unknown as ChatCompletionCreateParams;
    if (request.stream === true) {
      // Usage always comes back (the HTTP thread counts tokens); it drops the chunk if the client did not ask.
      const stream = await (model as LlavaMini).chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }, { signal });
      for await (const chunk of stream) post({ type: 'chunk', id, chunk });
      post({ type: 'done', id });
    } else {
      post({ type: 'done', id, completion: await (model as LlavaMini).chat.completions.create({ ...request, stream: false }, { signal }) });
    }
  } catch (err) {
    post({ type: 'error', id, error: serializeError(err) });
  } finally {
    running.delete(id);
  }
}

function stats(): WorkerStats {
  const heapBytes = getHeapStatistics().used_heap_size;
  if (!model) return { kvBytes: 0, pictureBytes: 0, pictureEntries: 0, running: running.size, heapBytes };
  const pictures = model.vision.pictures.stats;
  return { kvBytes: model.parts.llm.cacheBytes, pictureBytes: pictures.bytes, pictureEntries: pictures.entries, running: running.size, heapBytes };
}

onMessage((m: ToWorker) => {
  if (m.type === 'cancel') running.get(m.id)?.abort();
  else if (m.type === 'run') start(m.id, m.body);
  else if (m.type === 'stats') post({ type: 'stats', stats: stats() });
  // Closed while loading (SIGTERM during load): the load finishes or fails first, then the model is freed.
  else if (m.type === 'close') void loading.then((l) => l.dispose(), () => {}).finally(() => process.exit(0));
});
