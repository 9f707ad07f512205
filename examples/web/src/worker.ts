// The model lives here, off the page's thread: loading (with per-file byte progress through the
// Cache API), the device choice, one conversation per picture or one live stream, streamed answers
// and Stop.
import type { ProgressEvent } from '@llava-mini/core';
import { type Conversation, type LiveStream, LlavaMini, type Manifest, MANIFEST_FILE } from '@llava-mini/pipeline/web';
import { cachedFetch, clearModelCache, forget, freeBytes, isCached } from './model-cache.js';
import type { DeviceChoice, FileProgress, FromWorker, LiveFrame, LiveWindowInfo, Picture, ToWorker } from './protocol.js';

interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;
const post = (m: FromWorker) => scope.postMessage(m);

let model: LlavaMini | undefined;
let picture: Picture | undefined;
let chat: Conversation | undefined;
/** Live mode: the stream the page's frames go into; questions are about its window. */
let live: LiveStream | undefined;
let liveWindowSeconds = 0;
let asked = 0;
let running: AbortController | undefined;

interface GpuAdapterLike {
  features: { has(name: string): boolean };
  info?: { vendor?: string; architecture?: string; description?: string };
}

/** WebGPU when the browser gives this worker an adapter (fp16 files if it has shader-f16), WASM otherwise; and why. */
async function chooseDevice(request: 'auto' | 'webgpu' | 'wasm', hasFp16: boolean): Promise<DeviceChoice> {
  if (request === 'wasm') return { device: 'wasm', dtype: 'fp32', reason: 'WASM was asked for (fp32 files)' };
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<GpuAdapterLike | null> } }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (!adapter) {
    const why = gpu ? 'navigator.gpu.requestAdapter() found no adapter' : 'this browser has no WebGPU (navigator.gpu is missing)';
    if (request === 'webgpu') throw new Error(`WebGPU was asked for, but ${why}`);
    return { device: 'wasm', dtype: 'fp32', reason: `WASM: ${why} (fp32 files)` };
  }
  const info = adapter.info;
  const name = [info?.vendor, info?.architecture || info?.description].filter(Boolean).join(' ') || 'an adapter';
  const f16 = adapter.features.has('shader-f16');
  const dtype = f16 && hasFp16 ? 'fp16' : 'fp32';
  const files = f16 ? (hasFp16 ? 'shader-f16, so fp16 files' : 'shader-f16, but this model has no fp16 files: fp32') : 'no shader-f16, so fp32 files';
  return { device: 'webgpu', dtype, reason: `WebGPU on ${name}: ${files}` };
}

/** A model folder is either converted files (manifest.json) or variants {fp32, fp16} of them (variants.json). */
async function variants(baseUrl: string): Promise<{ fp32: string; fp16?: string }> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const res = await fetch(new URL('variants.json', base)).catch(() => undefined);
  if (!res?.ok) return { fp32: base };
  const v = (await res.json()) as { fp32: string; fp16?: string };
  return { fp32: new URL(v.fp32, base).href, fp16: v.fp16 ? new URL(v.fp16, base).href : undefined };
}

async function load(baseUrl: string, request: 'auto' | 'webgpu' | 'wasm'): Promise<void> {
  const started = performance.now();
  await model?.dispose();
  model = undefined;
  chat = undefined;
  live = undefined;
  const v = await variants(baseUrl);
  const choice = await chooseDevice(request, !!v.fp16);
  post({ type: 'device', choice });
  const url = (choice.dtype === 'fp16' ? v.fp16 : v.fp32) as string;
  const at = (file: string) => new URL(file, url).href;

  const manifest = (await (await fetch(at(MANIFEST_FILE))).json()) as Manifest;
  // The files fromPretrained reads: the tokenizer's two, then every graph's.
  const tokenizerFiles = manifest.tokenizer.filter((f) => f.name === 'tokenizer.json' || f.name === 'tokenizer_config.json');
  const entries = [...tokenizerFiles, ...Object.values(manifest.stages).flatMap((s) => s.files)];
  const files = new Map<string, FileProgress>();
  for (const f of entries) files.set(f.name, { name: f.name, done: 0, total: f.bytes, cached: await isCached(at(f.name)) });
  const missing = [...files.values()].filter((f) => !f.cached).reduce((n, f) => n + f.total, 0);
  const free = await freeBytes();
  // Keep a margin: the quota is shared with everything else this origin stores.
  const store = free === undefined || missing * 1.1 < free;
  const note = store ? undefined : `Not enough storage to keep this model (needs ${mb(missing)}, ${mb(free ?? 0)} free): it loads without being cached.`;
  post({ type: 'progress', files: [...files.values()], note });

  const cache = cachedFetch(store);
  let last = 0;
  const onProgress = (e: ProgressEvent) => {
    const f = e.item ? files.get(e.item) : undefined;
    if (!f || e.task !== 'download') return;
    f.done = e.done;
    const now = performance.now();
    if (now - last > 100 || e.done === e.total) {
      last = now;
      post({ type: 'progress', files: [...files.values()], note });
    }
  };
  const open = () =>
    LlavaMini.fromPretrained(url, {
      device: choice.device,
      fetch: cache.fetch,
      onProgress,
      numThreads: self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1,
    });
  try {
    model = await open();
  } catch (err) {
    // A damaged cache entry fails its size or sha256 check (the error names its URL): forget it and fetch it again, once.
    const bad = (err as { code?: string; path?: string }).code === 'MODEL_FILES' ? (err as { path?: string }).path : undefined;
    if (!bad || !cache.hits.has(bad)) throw err;
    await forget([bad]);
    const f = [...files.values()].find((x) => at(x.name) === bad);
    if (f) f.cached = false;
    model = await open();
  }
  await cache.settle();
  const cached = [...files.values()].filter((f) => f.cached).length;
  const where = cached === files.size ? 'all files from the cache' : store ? `${files.size - cached} file(s) downloaded and cached` : 'not cached';
  post({ type: 'loaded', modelName: String(manifest.config._name_or_path ?? baseUrl.replace(/\/$/, '').split('/').pop()), loadMs: performance.now() - started, cache: where });
  if (liveWindowSeconds) startLive(liveWindowSeconds);
  else if (picture) setPicture(picture);
}

/** A new live stream (the picture's conversation, or the last live stream, ends). */
function startLive(windowSeconds: number): void {
  chat?.dispose();
  chat = undefined;
  live?.dispose();
  liveWindowSeconds = windowSeconds;
  // The encoder takes the newest frame when it is free (maxPending 1): the page shows what was dropped.
  const stream: LiveStream | undefined = model?.live({
    windowSeconds,
    onFrame: ({ time, window: { frames, from, to, bytes }, stats: { received, dropped, encoded } }) => {
      if (stream === live) post({ type: 'live-stats', time, window: { frames, from, to, bytes }, received, dropped, encoded });
    },
  });
  live = stream;
}

function stopLive(): void {
  live?.dispose();
  live = undefined;
  liveWindowSeconds = 0;
}

function pushFrame({ width, height, data, time }: LiveFrame): void {
  // While the model loads there is no stream: the frame is let go, as a busy encoder's would be.
  live?.push({ width, height, data }, time).catch((err) => post({ type: 'error', message: (err as Error).message }));
}

/** A new conversation about the picture (the last one's KV cache is let go). */
function newChat(): void {
  chat?.dispose();
  chat = model && picture ? model.chat(picture.kind === 'image' ? picture.blob : { frames: picture.frames }) : undefined;
}

function setPicture(p: Picture): void {
  stopLive();
  picture = p;
  asked = 0;
  newChat();
}

async function ask(question: string, maxNewTokens: number, newConversation: boolean): Promise<void> {
  if (!model || !(chat || live) || !(picture || live)) throw new Error(model ? 'pick a picture first' : 'the model is not loaded yet');
  // A new conversation about the same picture: its pre-fusion prefix comes from the picture cache, so CLIP does not run again.
  if (!live && newConversation && asked > 0) newChat();
  running = new AbortController();
  const encoderRunsBefore = model.vision.encoderRuns;
  // Live: about the window at this moment (its frames were encoded as they came; the answer says which it saw).
  // Log-probabilities too (a softmax per token): the page keeps them beside the answer, where a test compares them with Node's.
  const options = { maxNewTokens, signal: running.signal, logprobs: true };
  const answer = live ? live.ask(question, options) : chat!.ask(question, options);
  asked++;
  let text = '';
  const logprobs: number[] = [];
  try {
    for await (const token of answer) {
      text += token.text;
      if (token.logprobs) logprobs.push(token.logprobs.logprob);
      post({ type: 'token', text: token.text });
    }
    const r = await answer.done();
    const seen = (r as { window?: LiveWindowInfo }).window;
    post({
      type: 'answer',
      window: seen && { frames: seen.frames, from: seen.from, to: seen.to },
      ids: r.ids,
      logprobs,
      text: r.text,
      stopped: false,
      timeToFirstTokenMs: r.timings.timeToFirstTokenMs,
      tokensPerSecond: r.timings.decodeTokensPerSecond,
      tokens: r.ids.length,
      encoderRuns: model.vision.encoderRuns,
      picturesEncoded: model.vision.encoderRuns > encoderRunsBefore,
    });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ABORTED') throw err;
    post({ type: 'answer', text, stopped: true, timeToFirstTokenMs: 0, tokensPerSecond: 0, tokens: 0, encoderRuns: model.vision.encoderRuns, picturesEncoded: model.vision.encoderRuns > encoderRunsBefore });
  } finally {
    running = undefined;
  }
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

scope.onmessage = (e) => {
  const m = e.data;
  const fail = (err: unknown) => post({ type: 'error', message: (err as Error).message ?? String(err) });
  switch (m.type) {
    case 'load':
      load(m.baseUrl, m.device).catch((err) => post({ type: 'load-failed', message: (err as Error).message ?? String(err), retry: true }));
      break;
    case 'picture':
      setPicture(m.picture);
      break;
    case 'ask':
      ask(m.question, m.maxNewTokens, m.newConversation).catch(fail);
      break;
    case 'stop':
      running?.abort();
      break;
    case 'live-start':
      startLive(m.windowSeconds);
      break;
    case 'live-frame':
      try {
        pushFrame(m.frame);
      } catch (err) {
        fail(err);
      }
      break;
    case 'live-stop':
      stopLive();
      break;
    case 'clear-cache':
      clearModelCache().then((freedBytes) => post({ type: 'cache-cleared', freedBytes }), fail);
      break;
  }
};
export {};
