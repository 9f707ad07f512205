// The browser entry (@llava-mini/pipeline/web on onnxruntime-web) in real headless Chromium, on WASM
// and on WebGPU (SwiftShader, Chromium's software adapter, where the machine has no GPU): bundled
// like an app would bundle it, served from a loopback HTTP server, held to the exact token ids the
// Node entry gives for the same model, picture and question, and stage by stage to the reference.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadImage, processImage, readVisionConfig } from '@llava-mini/encoder/node';
import { convertCheckpoint, LlavaMini, MANIFEST_FILE, type Manifest } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageResult } from './browser-page.js';
import { bundlePage, CHROMIUM, HAVE_CHROMIUM, launchChromium, ORT_DIST, runPage, serve } from './chromium.js';
import type { StageOutputs } from './stage-outputs.js';
import { expectStagesClose, referenceStages } from './stage-reference.js';

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const QUESTION = 'What is in this picture?';
const MAX_NEW = 6;
const RESULT_TIMEOUT_MS = 240_000;
/** fp32 in the browser vs the float64-accumulating reference (measured ~1e-6 on both devices). */
const TOLERANCE = 1e-4;
if (!HAVE_CHROMIUM) console.warn(`[browser.test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.skipIf(!HAVE_CHROMIUM)(`browser entry in headless Chromium (${CHROMIUM})`, () => {
  let root = '';
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let nodeIds: number[];
  let manifest: Manifest;
  let reference: (promptIds: number[], ids: number[]) => Promise<StageOutputs>;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-browser-'));
    // 112 px: 64 patches per picture keeps SwiftShader's share of the run to seconds.
    const ckpt = path.join(root, 'hf');
    const { config } = await writeTinyCheckpoint(ckpt, { seed: 7, std: 0.3, imageSize: 112 });
    const model = path.join(root, 'model');
    await convertCheckpoint(ckpt, model);
    manifest = JSON.parse(fs.readFileSync(path.join(model, MANIFEST_FILE), 'utf8'));
    const node = await LlavaMini.fromPretrained(model, { device: 'cpu' });
    try {
      nodeIds = (await node.ask(IMAGE, QUESTION, { maxNewTokens: MAX_NEW }).done()).ids;
    } finally {
      await node.dispose();
    }
    const pixels = processImage(await loadImage(IMAGE), readVisionConfig(config));
    reference = async (promptIds, ids) => referenceStages(ckpt, config as Record<string, any>, pixels, promptIds, ids);

    const site = path.join(root, 'site');
    await bundlePage(path.join(__dirname, 'browser-page.ts'), site);
    fs.copyFileSync(IMAGE, path.join(site, 'house.png'));
    server = await serve({ '/model/': model, '/ort/': ORT_DIST, '/': site });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  /** Open the page for one device and wait for its result. */
  function run(device: 'wasm' | 'webgpu') {
    const o = server!.origin;
    const query = new URLSearchParams({ model: `${o}/model/`, wasm: `${o}/ort/`, image: `${o}/house.png`, question: QUESTION, maxNewTokens: String(MAX_NEW), device, stages: '1' });
    return runPage<PageResult>(browser!, o, `${o}/index.html?${query}`, RESULT_TIMEOUT_MS);
  }

  /** The page's answer equals Node's, each stage is within tolerance of the reference, and every file's bytes were reported as they loaded. */
  async function expectSameAsNode(result: PageResult, log: string[], device: string): Promise<void> {
    expect(result.error, `page failed; page log:\n${log.join('\n')}`).toBeUndefined();
    expect(result.device).toBe(device);
    const ids = JSON.parse(result.ids!) as number[];
    console.log(`[browser.test] node ids ${JSON.stringify(nodeIds)}; chromium ${device} ids ${JSON.stringify(ids)}`);
    expect(nodeIds.length).toBeGreaterThan(0);
    expect(ids).toEqual(nodeIds);
    const stages = result.stages!;
    console.log(`[browser.test] ${device} relative errors`, expectStagesClose(stages, await reference(stages.promptIds, ids), TOLERANCE));
    const files = Object.values(manifest.stages).flatMap((st) => st.files);
    for (const f of files) {
      const events = result.progress!.filter((e) => e.item === f.name);
      expect(events.length, `progress events for ${f.name}`).toBeGreaterThan(0);
      expect(events.at(-1)).toMatchObject({ done: f.bytes, total: f.bytes });
    }
  }

  it('wasm: the same token ids as Node, each stage as the reference', async () => {
    const { result, log, offsite } = await run('wasm');
    await expectSameAsNode(result, log, 'wasm');
    expect(offsite).toEqual([]);
  }, 300_000);

  it('webgpu (SwiftShader without a GPU): the same token ids as Node, each stage as the reference', async () => {
    const { result, log, offsite } = await run('webgpu');
    expect(offsite).toEqual([]);
    if (!result.webgpuAdapter) {
      // CI has SwiftShader: there a missing adapter is a failure, not a pass.
      expect(process.env.LLAVA_MINI_REQUIRE_WEBGPU, 'no WebGPU adapter in headless Chromium').toBeFalsy();
      console.log(`[browser.test] webgpu: no adapter in headless Chromium -> ${result.error?.name}: ${result.error?.message}`);
      expect(result.ok).toBe(false);
      expect(result.error).toMatchObject({ name: 'DeviceUnavailableError', code: 'DEVICE_UNAVAILABLE' });
      return;
    }
    await expectSameAsNode(result, log, 'webgpu');
  }, 300_000);
});
