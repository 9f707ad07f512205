// The browser entry (@llava-mini/pipeline/web on onnxruntime-web) in real headless Chromium, on WASM
// and on WebGPU (SwiftShader, Chromium's software adapter, where the machine has no GPU): bundled
// like an app would bundle it, served from a loopback HTTP server, held to the exact token ids the
// Node entry gives for the same model, picture and question, and stage by stage to the reference.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadImage, processImage, readVisionConfig } from '@llava-mini/encoder/node';
import { convertCheckpoint, LlavaMini, MANIFEST_FILE, type Manifest } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import * as esbuild from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageResult } from './browser-page.js';
import type { StageOutputs } from './stage-outputs.js';
import { expectStagesClose, referenceStages } from './stage-reference.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
// onnxruntime-web's main file under Node sits in its dist/, beside the .wasm files the page loads.
const ORT_DIST = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
const QUESTION = 'What is in this picture?';
const MAX_NEW = 6;
const RESULT_TIMEOUT_MS = 240_000;
/** fp32 in the browser vs the float64-accumulating reference (measured ~1e-6 on both devices). */
const TOLERANCE = 1e-4;
/** Chromium's WebGPU on its bundled SwiftShader when there is no GPU (a GPU, if present, is used instead). */
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];
if (!HAVE_CHROMIUM) console.warn(`[browser.test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
};

/** A static file server on 127.0.0.1 only: URL prefix -> folder. Cross-origin isolated, like a page running threaded WASM would be. */
async function serve(mounts: Record<string, string>): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://127.0.0.1');
    const prefix = Object.keys(mounts).find((p) => pathname.startsWith(p));
    const dir = prefix && path.resolve(mounts[prefix]);
    const file = dir && path.resolve(dir, `.${path.posix.normalize(`/${pathname.slice(prefix.length)}`)}`);
    if (!dir || !file || !file.startsWith(dir + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

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

    // The page is bundled the way an app would bundle the package: its browser build of onnxruntime-web,
    // with the .wasm files served separately (wasmPaths) rather than copied by the bundler.
    const site = path.join(root, 'site');
    await esbuild.build({
      entryPoints: [path.join(__dirname, 'browser-page.ts')],
      outfile: path.join(site, 'page.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      // core's web backend reaches node:fs only under Node, through a guarded dynamic import.
      external: ['node:*'],
      logLevel: 'error',
    });
    fs.writeFileSync(path.join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><title>llava-mini</title><script type="module" src="page.js"></script>\n');
    fs.copyFileSync(IMAGE, path.join(site, 'house.png'));
    server = await serve({ '/model/': model, '/ort/': ORT_DIST, '/': site });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--headless=new', '--no-sandbox', ...WEBGPU_FLAGS, '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  /** Open the page for one device in a fresh context and wait for its result; the page's console and any request off the loopback server come back too. */
  async function run(device: 'wasm' | 'webgpu'): Promise<{ result: PageResult; log: string[]; offsite: string[] }> {
    const context = await browser!.newContext();
    const page: Page = await context.newPage();
    const log: string[] = [];
    const offsite: string[] = [];
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith(`${server!.origin}/`)) offsite.push(r.url());
    });
    try {
      const o = server!.origin;
      const query = new URLSearchParams({ model: `${o}/model/`, wasm: `${o}/ort/`, image: `${o}/house.png`, question: QUESTION, maxNewTokens: String(MAX_NEW), device, stages: '1' });
      await page.goto(`${o}/index.html?${query}`, { timeout: 30_000 });
      const handle = await page.waitForFunction(() => window.__result, undefined, { timeout: RESULT_TIMEOUT_MS, polling: 100 }).catch((err: Error) => {
        throw new Error(`no result from the page within ${RESULT_TIMEOUT_MS / 1000} s (${err.message}); page log:\n${log.join('\n')}`);
      });
      return { result: (await handle.jsonValue()) as PageResult, log, offsite };
    } finally {
      await context.close().catch(() => undefined);
    }
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
