// The LLM stage on WebGPU in headless Chromium (SwiftShader where there is no GPU) with a
// GroupQueryAttention decoder, the graph GPU targets get: its present outputs stay in GPU memory and
// come back as the next run's past, so the KV cache never crosses to the host between steps. Held to
// Node CPU's tokens, and the bytes each run moves are counted against the same model with the cache
// on the host (onnxruntime-web's WASM, where every run feeds it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Checkpoint, nodeBackend } from '@llava-mini/core/node';
import { generate, LlamaModel, readLlamaConfig, writeLlamaModel } from '@llava-mini/llm/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePage, CHROMIUM, HAVE_CHROMIUM, launchChromium, ORT_DIST, runPage, serve } from './chromium.js';
import type { LlmPageResult } from './llm-page.js';

const PROMPT = [1, 5, 9, 42, 7, 300, 11, 2];
const MAX_NEW = 12;
if (!HAVE_CHROMIUM) console.warn(`[llm-webgpu.test] skipped: no Chromium at ${CHROMIUM}`);

describe.skipIf(!HAVE_CHROMIUM)('LLM on WebGPU: the KV cache stays in GPU memory', () => {
  let root = '';
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let nodeIds: number[] = [];
  let kvBytesPerPosition = 0;
  let vocab = 0;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-llm-webgpu-'));
    const ckpt = path.join(root, 'hf');
    const { config } = await writeTinyCheckpoint(ckpt, { seed: 11, std: 0.3 });
    const llama = readLlamaConfig(config as Record<string, unknown>);
    kvBytesPerPosition = 2 * llama.numLayers * llama.numKvHeads * llama.headDim * 4;
    vocab = llama.vocabSize;
    const site = path.join(root, 'site');
    const files = writeLlamaModel(site, Checkpoint.open(ckpt), llama, { format: { dtype: 'float32' }, kvCache: 'shared', maxPositions: 256 });
    writeLlamaModel(path.join(site, 'fp16'), Checkpoint.open(ckpt), llama, { format: { dtype: 'float16' }, maxPositions: 256 });
    fs.writeFileSync(path.join(site, 'config.json'), JSON.stringify(config));
    const model = await LlamaModel.create(await nodeBackend(), files, { config: llama, device: 'cpu', maxSequence: 256 });
    try {
      nodeIds = (await generate(model.sequence(), PROMPT, { maxNewTokens: MAX_NEW, stopIds: [] }).done()).ids;
    } finally {
      await model.dispose();
    }
    await bundlePage(path.join(__dirname, 'llm-page.ts'), site);
    server = await serve({ '/ort/': ORT_DIST, '/': site });
  });

  afterAll(async () => {
    await server?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  async function run(device: 'webgpu' | 'wasm', folder = ''): Promise<LlmPageResult> {
    const o = server!.origin;
    const files = fs.readdirSync(path.join(root, 'site', folder));
    const model = path.posix.join(folder, files.find((f) => f.endsWith('.onnx') && !f.includes('embeddings')) as string);
    const query = new URLSearchParams({ device, model: `${o}/${model}`, config: `${o}/config.json`, wasm: `${o}/ort/`, ids: JSON.stringify(PROMPT), maxNewTokens: String(MAX_NEW) });
    const browser = await launchChromium();
    try {
      return (await runPage<LlmPageResult>(browser, o, `${o}/index.html?${query}`, 240_000)).result;
    } finally {
      await browser.close().catch(() => undefined);
    }
  }

  it('the same tokens as Node CPU; no run moves the cache between host and GPU; a rollback gives the same tokens again', async () => {
    const gpu = await run('webgpu');
    if (gpu.error?.includes('DeviceUnavailableError') || gpu.error?.includes('DEVICE_UNAVAILABLE')) {
      expect(process.env.LLAVA_MINI_REQUIRE_WEBGPU, `no WebGPU adapter in headless Chromium: ${gpu.error}`).toBeFalsy();
      return;
    }
    expect(gpu.error).toBeUndefined();
    expect(gpu.ids).toEqual(nodeIds);
    const t = gpu.traffic!;
    const perRun = (bytes: number) => `${(bytes / gpu.runs! / 1024).toFixed(2)} KiB`;
    // What a cache kept on the host would send up, summed over the runs: every cached position, each run.
    const hostKv = Array.from({ length: MAX_NEW }, (_, i) => (i === 0 ? 0 : PROMPT.length + i - 1)).reduce((a, n) => a + n * kvBytesPerPosition, 0);
    console.log(
      `[llm-webgpu.test] ${gpu.runs} decoder runs on WebGPU: ${perRun(t.uploadedBytes)} up and ${perRun(t.fetchedBytes + t.downloadedBytes)} down per run ` +
        `(device outputs downloaded: ${t.downloadedBytes} B); a host-side cache would add ${(hostKv / gpu.runs! / 1024).toFixed(2)} KiB up and as much down per run at this length`,
    );
    expect(gpu.runs).toBe(MAX_NEW);
    expect(t.downloadedBytes).toBe(0);
    // Down: each run's logits, nothing else.
    expect(t.fetchedBytes).toBe(gpu.runs! * vocab * 4);
    // Up: the new rows' ids and positions only (a few dozen bytes a run), far below one run's cache.
    expect(t.uploadedBytes / gpu.runs!).toBeLessThan(PROMPT.length * kvBytesPerPosition);
    // A rollback reads the rows back once (truncate, then the next run uploads what is kept): the same tokens.
    expect(gpu.afterRollback).toEqual(nodeIds);
  }, 300_000);

  it('a float16 model on an adapter without shader-f16 is refused with the way out, not run into garbage', async () => {
    const r = await run('webgpu', 'fp16');
    if (r.shaderF16) {
      expect(r.error).toBeUndefined(); // a GPU with shader-f16 runs it
      return;
    }
    if (r.error?.includes('found no GPU adapter')) {
      expect(process.env.LLAVA_MINI_REQUIRE_WEBGPU, r.error).toBeFalsy();
      return;
    }
    expect(r.error).toMatch(/^DeviceUnavailableError: device 'webgpu' is not available: this WebGPU adapter has no 'shader-f16', which a float16 model needs\. Use a float32 model/);
  }, 300_000);
});
