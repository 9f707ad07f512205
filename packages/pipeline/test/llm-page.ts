// Page script for llm-webgpu.test.ts, bundled with esbuild and run in headless Chromium: the LLM
// stage alone (@llava-mini/llm on onnxruntime-web) greedily continues the served prompt ids, and
// reports the bytes its decoder runs moved between the host and the device.
import type { RunTraffic } from '@llava-mini/core';
import { webBackend } from '@llava-mini/core/web';
import { generate, LlamaModel, readLlamaConfig } from '@llava-mini/llm';

export interface LlmPageResult {
  ids?: number[];
  traffic?: RunTraffic;
  runs?: number;
  /** The same continuation after truncating the sequence to the prompt minus its last token. */
  afterRollback?: number[];
  error?: string;
  /** Whether the page's WebGPU adapter has shader-f16 (asked directly). */
  shaderF16?: boolean;
}

const query = new URLSearchParams(location.search);
const param = (name: string): string => query.get(name) ?? '';

async function main(): Promise<LlmPageResult> {
  const config = readLlamaConfig(await (await fetch(param('config'))).json());
  const backend = await webBackend({ numThreads: 1, wasmPaths: param('wasm') });
  const model = await LlamaModel.create(backend, { model: param('model') }, { config, device: param('device') as 'webgpu' | 'wasm', maxSequence: 256 });
  try {
    const prompt = JSON.parse(param('ids')) as number[];
    const options = { maxNewTokens: Number(param('maxNewTokens')), stopIds: [] };
    const seq = model.sequence();
    const r = await generate(seq, prompt, options).done();
    const first = { ids: r.ids, traffic: model.traffic, runs: model.profile.runs };
    // Roll back to before the prompt's last token and go on from there: the GPU-resident rows are cut on the host.
    seq.truncate(prompt.length - 1);
    const again = await generate(seq, prompt.slice(-1), options).done();
    return { ...first, afterRollback: again.ids };
  } finally {
    await model.dispose();
  }
}

async function shaderF16(): Promise<boolean> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<{ features: { has(f: string): boolean } } | null> } }).gpu;
  return !!(await gpu?.requestAdapter().catch(() => null))?.features.has('shader-f16');
}

void main()
  .catch((err: unknown): LlmPageResult => ({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }))
  .then(async (r) => {
    (window as unknown as { __result: LlmPageResult }).__result = { ...r, shaderF16: await shaderF16() };
  });
