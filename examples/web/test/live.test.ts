// The page's live mode in headless Chromium (WASM): the camera is Chromium's fake one, fed a clip of
// the shapes world (examples/assets/shapes.mp4, a red circle moving right past a blue square,
// turned into the raw .y4m file the fake camera plays in a loop), then the built-in shapes scene
// (a canvas captured as a MediaStream). A count question asked while live must get the true count
// (the demo model counts clips right every time on its card), and the frames the page sent to its
// worker for that window must give the same tokens in Node (video mode on exactly those frames);
// on the scene a colour follow-up, asked when the window has moved on, too. The screen source runs
// on Chromium's fake screen, drawn scaled down.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ffmpegBinary } from '@llava-mini/encoder/node';
import { type ChatOptions, LlavaMini } from '@llava-mini/pipeline/node';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_HINTS, prepareModels } from '../scripts/prepare-models.mjs';
import { serve } from './serve.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) {
  if (process.env.LLAVA_MINI_REQUIRE_WEBGPU) throw new Error(`no Chromium at ${CHROMIUM}`);
  console.warn(`[live.test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
const EXAMPLE = path.resolve(__dirname, '..');
const CLIP = path.resolve(EXAMPLE, '../assets/shapes.mp4');
/** Where the screenshots go (page.test.ts's folder). */
const SHOTS = path.join(EXAMPLE, '.screenshots');
const COUNT = 'How many shapes are there?';
const COLOR = 'What color is the square?';
const MAX_NEW = 16;
/** The earlier turns of a conversation. */
type History = NonNullable<ChatOptions['history']>;
/** Frames in the window before the question: a few seconds of stream, as a clip the model was trained on (4-8 frames). */
const FRAMES_BEFORE_ASKING = 4;

async function run(bin: string, args: string[]): Promise<void> {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
  if (code !== 0) throw new Error(`${bin} ${args.join(' ')}: exit ${code}: ${err.trim()}`);
}

interface Seen {
  text: string;
  ids: number[];
  /** Log-probability of each streamed token. */
  logprobs: number[];
  window: { frames: number; from: number; to: number };
  /** The page's frames of that window, as it posted them to the worker. */
  frames: { width: number; height: number; data: Uint8Array; time: number }[];
}

describe.skipIf(!HAVE_CHROMIUM)('examples/web live mode in headless Chromium', () => {
  let root = '';
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let node: LlavaMini | undefined;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-example-live-'));
    const site = path.join(root, 'site');
    await build({ root: EXAMPLE, logLevel: 'warn', build: { outDir: site, emptyOutDir: true } });
    await prepareModels(path.join(root, 'models'), { tiny: false, log: () => {} });
    node = await LlavaMini.fromPretrained(path.join(root, 'models', 'llava-mini-shapes', 'fp32'), { device: 'cpu' });
    // The fake camera plays raw YUV (.y4m) at the file's frame rate: the 1 fps clip repeated to 10 fps, looped by Chromium.
    const y4m = path.join(root, 'camera.y4m');
    await run(await ffmpegBinary('ffmpeg'), ['-v', 'error', '-y', '-i', CLIP, '-vf', 'fps=10', '-pix_fmt', 'yuv420p', '-threads', '1', y4m]);
    server = await serve({ '/models/': path.join(root, 'models'), '/': site });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--headless=new', '--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`, '--autoplay-policy=no-user-gesture-required', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
    await node?.dispose();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  /** The page on WASM with the demo model loaded, camera permission granted. */
  async function open(): Promise<{ page: Page; log: string[]; close(): Promise<void> }> {
    const context = await browser!.newContext({ viewport: { width: 1100, height: 720 }, permissions: ['camera'] });
    const page = await context.newPage();
    const log: string[] = [];
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(`${server!.origin}/?device=wasm`);
    await page.waitForSelector('#load-line[data-state="loaded"]', { timeout: 120_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}\nload line: ${await page.textContent('#load-line')}\npage log:\n${log.join('\n')}`);
    });
    return { page, log, close: () => context.close() };
  }

  /** Start the live source and wait for `frames` frames in the window. */
  async function startLive(page: Page, log: string[], source: 'camera' | 'screen' | 'scene', frames = FRAMES_BEFORE_ASKING): Promise<void> {
    await page.click(`#live-${source}`);
    await waitForFrames(page, log, frames);
    expect(await page.textContent('#conversation')).toMatch(/\(live\)/);
    await page.fill('#max-tokens', String(MAX_NEW));
  }

  const waitForFrames = (page: Page, log: string[], frames: number) =>
    page.waitForFunction((n) => Number(document.getElementById('live-line')?.dataset.frames) >= n, frames, { timeout: 30_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}\nlive line: ${await page.textContent('#live-line')}\npage log:\n${log.join('\n')}`);
    });

  /** Ask `question` as turn `turn` (from 1) of the live conversation; the answer and the frames it saw. */
  async function askNow(page: Page, log: string[], turn: number, question: string): Promise<Seen> {
    await page.fill('#question', question);
    await page.click('#ask');
    const li = await page.waitForSelector(`#turns li:nth-child(${turn})[data-done]`, { timeout: 60_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}\nstats: ${await page.textContent('#stats')}\npage log:\n${log.join('\n')}`);
    });
    const data = await li.evaluate((el) => ({ ...(el as HTMLElement).dataset }));
    const window = { frames: Number(data.windowFrames), from: Number(data.windowFrom), to: Number(data.windowTo) };
    // The frames the page posted that the worker took, from the window's first to its last.
    const frames = await page.evaluate(({ from, to }) => {
      const kept = (globalThis as unknown as { llavaLive: { frames: { width: number; height: number; data: Uint8Array; time: number; inWindow?: boolean }[] } }).llavaLive.frames;
      return kept.filter((f) => f.inWindow && f.time >= from && f.time <= to).map((f) => ({ width: f.width, height: f.height, time: f.time, data: btoa(Array.from(f.data, (b) => String.fromCharCode(b)).join('')) }));
    }, window);
    return {
      text: (await page.textContent(`#turns li:nth-child(${turn}) .a`)) ?? '',
      ids: (data.ids ?? '').split(',').filter(Boolean).map(Number),
      logprobs: (data.logprobs ?? '').split(',').filter(Boolean).map(Number),
      window,
      frames: frames.map((f) => ({ ...f, data: new Uint8Array(Buffer.from(f.data, 'base64')) })),
    };
  }

  /** Node's video mode on `frames`, after the earlier turns: the answer and each streamed token's log-probability. */
  async function nodeAnswer(frames: Seen['frames'], question: string, history: History): Promise<{ ids: number[]; text: string; logprobs: number[] }> {
    const chat = node!.chat({ frames }, { history });
    try {
      const answer = chat.ask(question, { maxNewTokens: MAX_NEW, logprobs: true });
      const logprobs: number[] = [];
      for await (const t of answer) if (t.logprobs) logprobs.push(t.logprobs.logprob);
      const { ids, text } = await answer.done();
      return { ids, text, logprobs };
    } finally {
      chat.dispose();
    }
  }

  /**
   * The window's frames are the ones the page sent, and Node's video mode on them gives the page's
   * tokens with the same log-probabilities (to WASM's rounding: 3e-8 where this was written). A
   * one-word answer is robust, so the log-probabilities are what tell other frames apart: Node on
   * the window less its last frame moved them by 5e-3 there, and must move them by far more than
   * the rounding allowed.
   */
  async function expectNodeTokens(seen: Seen, question: string, { history = [], sensitive = true, minFrames = FRAMES_BEFORE_ASKING }: { history?: History; sensitive?: boolean; minFrames?: number } = {}): Promise<void> {
    expect(seen.window.frames).toBeGreaterThanOrEqual(minFrames);
    expect(seen.frames.map((f) => f.time)).toHaveLength(seen.window.frames);
    const same = await nodeAnswer(seen.frames, question, history);
    expect(seen.ids).toEqual(same.ids);
    expect(seen.text).toBe(same.text);
    expect(seen.logprobs).toHaveLength(same.logprobs.length);
    const gap = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    const tolerance = 1e-5;
    expect(gap(seen.logprobs, same.logprobs)).toBeLessThan(tolerance);
    if (!sensitive) return;
    const other = await nodeAnswer(seen.frames.slice(0, -1), question, history);
    expect(gap(other.logprobs, same.logprobs), 'a window one frame shorter moves the log-probabilities').toBeGreaterThan(10 * tolerance);
  }

  it('the fake camera playing the shapes clip: the count is right, and Node gives the same tokens on the frames the page sent', async () => {
    expect(DEMO_HINTS.clipQuestions).toContain(COUNT);
    const { page, log, close } = await open();
    try {
      await startLive(page, log, 'camera');
      const seen = await askNow(page, log, 1, COUNT);
      await page.click('#live-stop');
      // The camera is the clip: a red circle and a blue square in every frame.
      expect(seen.text).toBe('2');
      expect(seen.frames[0]).toMatchObject({ width: 320, height: 240 });
      await expectNodeTokens(seen, COUNT);
      expect(await page.textContent('#turns li:nth-child(1) .meta')).toMatch(/saw \d+ frames, [\d.]+–[\d.]+ s \(each encoded as it arrived\)/);
      expect(await page.textContent('#live-line')).toMatch(/Live stopped: window \d+ frames .* 0 dropped/);
      // A picture after live mode: the preview <video> plays a file again, a new conversation starts.
      await page.click('#sample-clip');
      await page.waitForFunction(() => /6 frame\(s\), one per second/.test(document.getElementById('picture-line')?.textContent ?? ''), undefined, { timeout: 30_000 });
      expect(await page.getAttribute('#conversation', 'data-turns')).toBe('0');
      expect(await page.textContent('#conversation')).toMatch(/Conversation about sample\.mp4/);
    } finally {
      await close();
    }
  }, 120_000);

  it('the built-in shapes scene (canvas.captureStream()): the count is right, and Node gives the same tokens, for a follow-up on the moved window too', async () => {
    const { page, log, close } = await open();
    try {
      await startLive(page, log, 'scene');
      const seen = await askNow(page, log, 1, COUNT);
      // A red circle, a blue square and a green triangle.
      expect(seen.text).toBe('3');
      await expectNodeTokens(seen, COUNT);
      // A follow-up two frames later: the window has moved, the first turn is in the prompt.
      await waitForFrames(page, log, seen.window.frames + 2);
      const next = await askNow(page, log, 2, COLOR);
      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, 'live-scene.png'), fullPage: true });
      await page.click('#live-stop');
      expect(next.window.to).toBeGreaterThan(seen.window.to);
      // The square is blue in every frame (colour follow-ups: 100 % in the model card, 8 questions).
      expect(next.text).toBe('blue');
      await expectNodeTokens(next, COLOR, { history: [{ user: COUNT, assistant: seen.text }] });
    } finally {
      await close();
    }
  }, 120_000);

  it('the screen (getDisplayMedia; Chromium\'s fake 1280x720 screen): frames drawn at most 640x480, and Node gives the same tokens', async () => {
    const { page, log, close } = await open();
    try {
      await startLive(page, log, 'screen', 2);
      const seen = await askNow(page, log, 1, COUNT);
      await page.click('#live-stop');
      const [{ width, height }] = seen.frames;
      expect(width * height).toBeLessThanOrEqual(640 * 480);
      expect(width / height).toBeCloseTo(16 / 9, 1);
      // Not the shapes world: no answer to hold it to, and a fake screen may not change between frames.
      await expectNodeTokens(seen, COUNT, { sensitive: false, minFrames: 2 });
    } finally {
      await close();
    }
  }, 120_000);
});
