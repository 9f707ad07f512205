// Page script for browser.test.ts, bundled with esbuild and run in headless Chromium: load the
// served model through the package's browser entry, ask one question about the served image, and
// leave the outcome on window.__result for the test to read. Parameters come from the page's query.
import { LlavaMini } from '@llava-mini/pipeline/web';

export interface PageResult {
  ok: boolean;
  /** Whether the browser itself offers a WebGPU adapter (asked directly, not through the library). */
  webgpuAdapter: boolean;
  device?: string;
  ids?: string;
  text?: string;
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
  const model = await LlavaMini.fromPretrained(param('model'), {
    device: param('device') as 'wasm' | 'webgpu',
    // One thread: no SharedArrayBuffer needed, and the run is the same whatever the page's isolation.
    numThreads: 1,
    wasmPaths: param('wasm'),
  });
  try {
    const r = await model.ask(param('image'), param('question'), { maxNewTokens: Number(param('maxNewTokens')) }).done();
    return { ok: true, webgpuAdapter, device: model.parts.llm.device, ids: JSON.stringify(r.ids), text: r.text };
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
