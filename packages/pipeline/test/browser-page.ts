// Page script for browser.test.ts, bundled with esbuild and run in headless Chromium: load the
// served model through the package's browser entry, ask one question about the served image, and
// leave the outcome on window.__result for the test to read. Parameters come from the page's query.
import { LlavaMini } from '@llava-mini/pipeline/web';
import { type StageOutputs, stageOutputs } from './stage-outputs.js';

export interface PageResult {
  ok: boolean;
  /** Whether the browser itself offers a WebGPU adapter (asked directly, not through the library). */
  webgpuAdapter: boolean;
  device?: string;
  ids?: string;
  text?: string;
  /** Each stage's output for the image (query `stages=1`), decoding the answer's own ids. */
  stages?: StageOutputs;
  /** Load progress events seen: bytes of each file as it downloads. */
  progress?: { item?: string; done: number; total?: number }[];
  /** Milliseconds fromPretrained took (download, storage, sessions), and the answer after it. */
  loadMs?: number;
  answerMs?: number;
  error?: { name: string; code?: string; message: string };
}

declare global {
  interface Window {
    __result?: PageResult;
  }
}

const query = new URLSearchParams(location.search);
const param = (name: string): string => {
  const value = query.get(name);
  if (value === null) throw new Error(`page query lacks '${name}'`);
  return value;
};

async function hasWebgpuAdapter(): Promise<boolean> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  return !!(await gpu?.requestAdapter().catch(() => null));
}

async function main(webgpuAdapter: boolean): Promise<PageResult> {
  const progress: PageResult['progress'] = [];
  const t0 = performance.now();
  const model = await LlavaMini.fromPretrained(param('model'), {
    device: param('device') as 'wasm' | 'webgpu',
    // One thread: no SharedArrayBuffer needed, and the run is the same whatever the page's isolation.
    numThreads: 1,
    wasmPaths: param('wasm'),
    onProgress: (e) => progress.push({ item: e.item, done: e.done, total: e.total }),
    // With a hub id for `model`: the local hub of browser-hub.test.ts.
    hubEndpoint: query.get('hub') ?? undefined,
    // browser-store.test.ts: which files go to OPFS, in which segments.
    logger: (m) => console.log(m),
    storage: query.get('storeMin') ? { minBytes: Number(query.get('storeMin')), segmentBytes: Number(param('segment')) } : undefined,
  });
  const loadMs = performance.now() - t0;
  try {
    // browser-release-widths.test.ts: whether every session is created (weights in device buffers), without the answer.
    if (query.get('loadOnly')) return { ok: true, webgpuAdapter, device: model.parts.llm.device, progress, loadMs };
    const t1 = performance.now();
    const r = await model.ask(param('image'), param('question'), { maxNewTokens: Number(param('maxNewTokens')) }).done();
    let stages: StageOutputs | undefined;
    if (query.get('stages')) {
      const pictures = await model.parts.resolveInput(param('image'), {});
      if (pictures.kind !== 'images') throw new Error('expected an image');
      stages = await stageOutputs(model, pictures.images[0], r.promptTokenIds, r.ids);
    }
    return { ok: true, webgpuAdapter, device: model.parts.llm.device, ids: JSON.stringify(r.ids), text: r.text, stages, progress, loadMs, answerMs: performance.now() - t1 };
  } finally {
    await model.dispose();
  }
}

void (async () => {
  const webgpuAdapter = await hasWebgpuAdapter();
  window.__result = await main(webgpuAdapter).catch((err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    return { ok: false, webgpuAdapter, error: { name: e.name, code: (e as { code?: string }).code, message: e.message } };
  });
})();
