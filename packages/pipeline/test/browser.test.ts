// The browser entry (@llava-mini/pipeline/web on onnxruntime-web WASM) in real headless Chromium:
// bundled like an app would bundle it, served from a loopback HTTP server, and held to the exact
// token ids the Node entry gives for the same model, picture and question.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTinyModel, LlavaMini } from '@llava-mini/pipeline/node';
import * as esbuild from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageResult } from './browser-page.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
// onnxruntime-web's main file under Node sits in its dist/, beside the .wasm files the page loads.
const ORT_DIST = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
const QUESTION = 'What is in this picture?';
const MAX_NEW = 8;
const RESULT_TIMEOUT_MS = 120_000;
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

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-browser-'));
    const model = await ensureTinyModel(path.join(root, 'model'), { seed: 7 });
    const node = await LlavaMini.fromPretrained(model, { device: 'cpu' });
    try {
      nodeIds = (await node.ask(IMAGE, QUESTION, { maxNewTokens: MAX_NEW }).done()).ids;
    } finally {
      await node.dispose();
    }

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
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
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
      const query = new URLSearchParams({ model: `${o}/model/`, wasm: `${o}/ort/`, image: `${o}/house.png`, question: QUESTION, maxNewTokens: String(MAX_NEW), device });
      await page.goto(`${o}/index.html?${query}`, { timeout: 30_000 });
      const handle = await page.waitForFunction(() => window.__result, undefined, { timeout: RESULT_TIMEOUT_MS, polling: 100 }).catch((err: Error) => {
        throw new Error(`no result from the page within ${RESULT_TIMEOUT_MS / 1000} s (${err.message}); page log:\n${log.join('\n')}`);
      });
      return { result: (await handle.jsonValue()) as PageResult, log, offsite };
    } finally {
      await context.close().catch(() => undefined);
    }
  }

  it('wasm: the same token ids as Node', async () => {
    const { result, log, offsite } = await run('wasm');
    expect(result.error, `page failed; page log:\n${log.join('\n')}`).toBeUndefined();
    expect(result.device).toBe('wasm');
    const ids = JSON.parse(result.ids!) as number[];
    console.log(`[browser.test] node ids ${JSON.stringify(nodeIds)}; chromium wasm ids ${JSON.stringify(ids)}`);
    expect(nodeIds.length).toBeGreaterThan(0);
    expect(ids).toEqual(nodeIds);
    expect(offsite).toEqual([]);
  }, 150_000);

  it('webgpu: an explicit DeviceUnavailableError without an adapter, else the same token ids', async () => {
    const { result, log, offsite } = await run('webgpu');
    expect(offsite).toEqual([]);
    if (!result.webgpuAdapter) {
      console.log(`[browser.test] webgpu: no adapter in headless Chromium -> ${result.error?.name}: ${result.error?.message}`);
      expect(result.ok).toBe(false);
      expect(result.error).toMatchObject({ name: 'DeviceUnavailableError', code: 'DEVICE_UNAVAILABLE' });
      expect(result.error!.message).toMatch(/WebGPU/);
      return;
    }
    console.log(`[browser.test] webgpu: headless Chromium has an adapter -> ${result.ok ? `ids ${result.ids}` : `${result.error?.name}: ${result.error?.message}`}`);
    expect(result.error, `page failed; page log:\n${log.join('\n')}`).toBeUndefined();
    expect(result.device).toBe('webgpu');
    expect(JSON.parse(result.ids!)).toEqual(nodeIds);
  }, 150_000);
});
