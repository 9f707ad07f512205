// The page as a person uses it, in headless Chromium: built with Vite, served from a loopback
// server, a picture picked, questions typed, answers streamed, on WebGPU (SwiftShader where there
// is no GPU) and on WASM; each answer must equal Node's for the same model, picture and question.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertCheckpoint, LlavaMini } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) {
  if (process.env.LLAVA_MINI_REQUIRE_WEBGPU) throw new Error(`no Chromium at ${CHROMIUM}`);
  console.warn(`[page.test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
const EXAMPLE = path.resolve(__dirname, '..');
const IMAGE = path.resolve(EXAMPLE, '../assets/house.png');
const QUESTIONS = ['What is in this picture?', 'And what colour is it?'];
const MAX_NEW = 8;
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];
/** Where the screenshots go; LLAVA_MINI_UPDATE_SCREENSHOT=1 also replaces the one the README shows. */
const SHOTS = path.join(EXAMPLE, '.screenshots');

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png' };

async function serve(mounts: Record<string, string>): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://127.0.0.1');
    const prefix = Object.keys(mounts).find((p) => pathname.startsWith(p)) as string;
    const dir = path.resolve(mounts[prefix]);
    const rel = pathname.slice(prefix.length) || 'index.html';
    const file = path.resolve(dir, `.${path.posix.normalize(`/${rel}`)}`);
    if (!file.startsWith(dir + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe.skipIf(!HAVE_CHROMIUM)('examples/web in headless Chromium', () => {
  let root = '';
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let nodeAnswers: string[];

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-example-web-'));
    const site = path.join(root, 'site');
    await build({ root: EXAMPLE, logLevel: 'warn', build: { outDir: site, emptyOutDir: true } });
    // 112 px pictures keep SwiftShader's share of the run to seconds.
    const ckpt = path.join(root, 'hf');
    await writeTinyCheckpoint(ckpt, { seed: 7, std: 0.3, imageSize: 112 });
    const model = path.join(root, 'models', 'tiny');
    await convertCheckpoint(ckpt, model);
    const node = await LlavaMini.fromPretrained(model, { device: 'cpu' });
    const chat = node.chat(IMAGE);
    nodeAnswers = [];
    for (const q of QUESTIONS) nodeAnswers.push((await chat.ask(q, { maxNewTokens: MAX_NEW }).done()).text);
    await node.dispose();
    server = await serve({ '/models/': path.join(root, 'models'), '/': site });
    browser = await chromium.launch({ executablePath: CHROMIUM, timeout: 30_000, args: ['--headless=new', '--no-sandbox', ...WEBGPU_FLAGS, '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    fs.mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  async function open(device: 'auto' | 'wasm'): Promise<{ page: Page; log: string[]; close(): Promise<void> }> {
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 } });
    const page = await context.newPage();
    const log: string[] = [];
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(`${server!.origin}/?model=/models/tiny/&device=${device}`);
    return { page, log, close: () => context.close() };
  }

  const loadState = (page: Page, state: string, log: string[]) =>
    page.waitForSelector(`#load-line[data-state="${state}"]`, { timeout: 120_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}\nload line: ${await page.textContent('#load-line')}\npage log:\n${log.join('\n')}`);
    });

  /** Pick the picture, ask each question in turn (a conversation), return the answers as the page shows them. */
  async function converse(page: Page, log: string[]): Promise<string[]> {
    await page.setInputFiles('#file', IMAGE);
    await page.fill('#max-tokens', String(MAX_NEW));
    const answers: string[] = [];
    for (const [i, q] of QUESTIONS.entries()) {
      await page.fill('#question', q);
      await page.click('#ask');
      await page.waitForSelector(`#turns li:nth-child(${i + 1})[data-done]`, { timeout: 240_000 }).catch(async (err: Error) => {
        throw new Error(`${err.message}\nstats: ${await page.textContent('#stats')}\npage log:\n${log.join('\n')}`);
      });
      answers.push((await page.textContent(`#turns li:nth-child(${i + 1}) .a`)) ?? '');
    }
    // The follow-up reused the picture's features: CLIP ran once.
    expect(await page.getAttribute('#stats', 'data-encoder-runs')).toBe('1');
    expect(await page.textContent('#turns li:nth-child(2) .meta')).toMatch(/picture not encoded again/);
    return answers;
  }

  it('WebGPU (auto picks it; SwiftShader has no shader-f16, so fp32): the streamed answers equal Node\'s', async () => {
    const { page, log, close } = await open('auto');
    try {
      await loadState(page, 'loaded', log);
      expect(await page.getAttribute('#device-line', 'data-device')).toBe('webgpu');
      expect(await page.textContent('#device-line')).toMatch(/WebGPU, fp32 — WebGPU on .*no shader-f16/);
      expect(await converse(page, log)).toEqual(nodeAnswers);
      await page.screenshot({ path: path.join(SHOTS, 'webgpu.png') });
      if (process.env.LLAVA_MINI_UPDATE_SCREENSHOT) fs.copyFileSync(path.join(SHOTS, 'webgpu.png'), path.join(EXAMPLE, 'screenshot.png'));

      // A second visit loads every file from the Cache API; the button empties it.
      await page.reload();
      await loadState(page, 'loaded', log);
      expect(await page.textContent('#load-line')).toMatch(/all files from the cache/);
      await page.click('#clear-cache');
      await page.waitForFunction(() => /Cache cleared/.test(document.getElementById('load-line')?.textContent ?? ''));
    } finally {
      await close();
    }
  }, 600_000);

  it('WASM, after a download that fails half way and is resumed: the same answers', async () => {
    const { page, log, close } = await open('wasm');
    try {
      // The first request for the LLM's weights dies; Retry fetches what is missing, the rest comes from the cache.
      let cut = false;
      await page.context().route('**/llm.onnx.data', (route) => {
        if (cut) return route.continue();
        cut = true;
        return route.abort('connectionreset');
      });
      await loadState(page, 'failed', log);
      await page.click('#load');
      await loadState(page, 'loaded', log);
      // The files that had arrived before the cut came from the cache on the retry.
      const downloaded = Number(/(\d+) file\(s\) downloaded and cached/.exec((await page.textContent('#load-line')) ?? '')?.[1]);
      expect(downloaded).toBeGreaterThan(0);
      expect(await page.textContent('#progress-text')).toMatch(/files from the cache/);
      expect(await page.textContent('#device-line')).toMatch(/WASM, fp32 — WASM was asked for/);
      expect(await converse(page, log)).toEqual(nodeAnswers);
      await page.screenshot({ path: path.join(SHOTS, 'wasm.png') });
    } finally {
      await close();
    }
  }, 600_000);
});
