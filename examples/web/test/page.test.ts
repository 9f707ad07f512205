// The page as a person uses it, in headless Chromium: built with Vite, served from a loopback
// server with the models scripts/prepare-models.mjs lays out (the trained demo model), opened with
// no parameters, the sample picture taken, a side question and a follow-up asked in one
// conversation, then the sample clip taken and a motion question asked, answers streamed, on WebGPU
// (SwiftShader where there is no GPU) and on WASM. Each picture answer must equal Node's for the
// same model, picture and conversation, every answer one word with nothing else, and the true one
// where the model card says the model has that skill.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LlavaMini } from '@llava-mini/pipeline/node';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_HINTS, prepareModels } from '../scripts/prepare-models.mjs';
import { serve } from './serve.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) {
  if (process.env.LLAVA_MINI_REQUIRE_WEBGPU) throw new Error(`no Chromium at ${CHROMIUM}`);
  console.warn(`[page.test] skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
}
const EXAMPLE = path.resolve(__dirname, '..');
/** The page's samples for the demo model (prepare-models copies them): the picture and the clip scripts/demo-assets.mjs writes. */
const SAMPLE = path.resolve(EXAMPLE, '../assets/shapes.png');
const SAMPLE_CLIP = path.resolve(EXAMPLE, '../assets/shapes.mp4');
/**
 * The picture's conversation (the page's first two suggestions): a red circle on the left, a blue
 * square on the right, a green triangle at the bottom; the second question is a follow-up.
 */
const QUESTIONS = DEMO_HINTS.questions.slice(0, 2);
const TRUE_ANSWERS = ['left', 'blue'];
/** The clip's question (the first clip suggestion): the red circle slides right, the blue square stays. */
const CLIP_QUESTION = DEMO_HINTS.clipQuestions[0];
const CLIP_ANSWER = 'right';
/**
 * What the model card measured on its held-out sets (eval/results.json): a true answer is required
 * of a question type the model has learned (>= 90 % held out) and reported for one it has not, so
 * the test holds the model to what its card claims, never less.
 */
const CARD = JSON.parse(fs.readFileSync(path.resolve(EXAMPLE, '../../models/llava-mini-shapes/eval/results.json'), 'utf8')) as Record<string, { perType?: Record<string, number> }>;
type Skill = [section: 'fp32' | 'video' | 'followups', type: string];
/** The skill each true answer needs: the side of a picture, a colour as a follow-up, the motion in a clip. */
const SKILLS: Skill[] = [['fp32', 'side'], ['followups', 'color']];
const CLIP_SKILL: Skill = ['video', 'motion'];
function expectTrue(got: string | undefined, want: string, [section, type]: Skill, what: string): void {
  const measured = CARD[section]?.perType?.[type] ?? 0;
  if (measured >= 0.9) expect.soft(got, `${what} (${type}: ${(100 * measured).toFixed(1)} % on the card)`).toBe(want);
  else console.warn(`[page.test] ${what}: '${got}' (true: '${want}'), not held: the model card gives ${section} ${type} ${(100 * measured).toFixed(1)} %`);
}
const expectTrueAnswers = (got: readonly string[], what: string) => TRUE_ANSWERS.forEach((want, i) => expectTrue(got[i], want, SKILLS[i], `${what}, ${QUESTIONS[i]}`));
/** The demo model writes the assistant header itself (6 tokens), then the answer and <|eot_id|>. */
const MAX_NEW = 16;
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];
/** Where the screenshots go; LLAVA_MINI_UPDATE_SCREENSHOT=1 also replaces the one the README shows. */
const SHOTS = path.join(EXAMPLE, '.screenshots');

describe.skipIf(!HAVE_CHROMIUM)('examples/web in headless Chromium', () => {
  let root = '';
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  /** Node's answers to the questions as one conversation (the page's default for the demo model), each on its own, and about the clip. */
  let nodeConversation: string[];
  let nodeAnswers: string[];
  let nodeClip: string;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-example-web-'));
    const site = path.join(root, 'site');
    await build({ root: EXAMPLE, logLevel: 'warn', build: { outDir: site, emptyOutDir: true } });
    // The page's models as `npm run example:web` prepares them, without the random-weight fallback.
    const listed = await prepareModels(path.join(root, 'models'), { tiny: false, log: () => {} });
    expect(listed.map((m) => m.name)).toEqual(['llava-mini-shapes']);
    const node = await LlavaMini.fromPretrained(path.join(root, 'models', 'llava-mini-shapes', 'fp32'), { device: 'cpu' });
    nodeAnswers = [];
    for (const q of QUESTIONS) nodeAnswers.push((await node.ask(SAMPLE, q, { maxNewTokens: MAX_NEW }).done()).text);
    const chat = node.chat(SAMPLE);
    nodeConversation = [];
    for (const q of QUESTIONS) nodeConversation.push((await chat.ask(q, { maxNewTokens: MAX_NEW }).done()).text);
    chat.dispose();
    nodeClip = (await node.ask({ video: SAMPLE_CLIP }, CLIP_QUESTION, { maxNewTokens: MAX_NEW }).done()).text;
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
    // No model parameter: the page opens with the first model of models/index.json, the demo model.
    await page.goto(`${server!.origin}/${device === 'auto' ? '' : `?device=${device}`}`);
    return { page, log, close: () => context.close() };
  }

  const loadState = (page: Page, state: string, log: string[]) =>
    page.waitForSelector(`#load-line[data-state="${state}"]`, { timeout: 120_000 }).catch(async (err: Error) => {
      throw new Error(`${err.message}\nload line: ${await page.textContent('#load-line')}\npage log:\n${log.join('\n')}`);
    });

  /**
   * Ask `questions` in turn about the picture on show (the first is already in the box, the others are
   * suggestion buttons); return the answers as the page shows them.
   */
  async function askInTurn(page: Page, log: string[], questions: string[]): Promise<string[]> {
    await page.fill('#max-tokens', String(MAX_NEW));
    const answers: string[] = [];
    for (const [i, q] of questions.entries()) {
      if (i > 0) await page.click(`#suggestions button:text-is("${q}")`);
      expect(await page.inputValue('#question')).toBe(q);
      await page.click('#ask');
      await page.waitForSelector(`#turns li:nth-child(${i + 1})[data-done]`, { timeout: 240_000 }).catch(async (err: Error) => {
        throw new Error(`${err.message}\nstats: ${await page.textContent('#stats')}\npage log:\n${log.join('\n')}`);
      });
      answers.push((await page.textContent(`#turns li:nth-child(${i + 1}) .a`)) ?? '');
    }
    expect(await page.getAttribute('#conversation', 'data-turns')).toBe(String(questions.length));
    return answers;
  }

  /**
   * Take the sample picture and ask the questions in turn, as one conversation (the default) or,
   * with `keepTurns` false, each on its own; return the answers as the page shows them.
   */
  async function converse(page: Page, log: string[], keepTurns = true): Promise<string[]> {
    expect(await page.inputValue('#model-url')).toBe('models/llava-mini-shapes/');
    expect(await page.textContent('#model-about')).toMatch(/^llava-mini-shapes: a tiny LLaVA-Mini trained here on pictures and 1 fps clips/);
    // The demo model was trained on conversations: a follow-up continues the conversation unless told otherwise.
    expect(await page.isChecked('#keep-turns')).toBe(true);
    if (!keepTurns) await page.uncheck('#keep-turns');
    await page.click('#sample');
    await page.waitForSelector('#preview-img:not([hidden])');
    const answers = await askInTurn(page, log, QUESTIONS);
    expect(await page.textContent('#conversation')).toContain(keepTurns ? 'each question sees the earlier turns' : 'each question is asked on its own');
    // The later questions reused the picture's features (the conversation's, or the picture cache's): CLIP ran once.
    expect(await page.getAttribute('#stats', 'data-encoder-runs')).toBe('1');
    expect(await page.textContent('#turns li:nth-child(2) .meta')).toMatch(/picture not encoded again/);
    return answers;
  }

  it('Node: the demo model answers the page\'s questions right where its card says it can (the side, the follow-up, the motion in the clip)', () => {
    expectTrueAnswers(nodeConversation, 'Node, in one conversation');
    expectTrueAnswers(nodeAnswers, 'Node, each on its own');
    expectTrue(nodeClip, CLIP_ANSWER, CLIP_SKILL, `Node, the clip: ${CLIP_QUESTION}`);
    // Whatever the model knows, an answer is one word: nothing stray before or after it.
    for (const a of [...nodeConversation, ...nodeAnswers, nodeClip]) expect(a).toMatch(/^[a-z0-9]+$/);
  });

  it('WebGPU (auto picks it; SwiftShader has no shader-f16, so fp32), the demo model by default: a side question and a follow-up in one conversation (Node\'s answers), then the sample clip\'s motion', async () => {
    const { page, log, close } = await open('auto');
    try {
      await loadState(page, 'loaded', log);
      expect(await page.getAttribute('#device-line', 'data-device')).toBe('webgpu');
      expect(await page.textContent('#device-line')).toMatch(/WebGPU, fp32 — WebGPU on .*no shader-f16/);
      const answers = await converse(page, log);
      // Soft: a wrong answer is reported without stopping the rest (the clip, the cache) from being driven.
      expect.soft(answers, 'the page\'s answers equal Node\'s').toEqual(nodeConversation);
      // The true answers, exactly: nothing stray (a line, a prompt marker) before the follow-up's answer either.
      expectTrueAnswers(answers, 'the page (WebGPU)');
      await page.screenshot({ path: path.join(SHOTS, 'webgpu.png'), fullPage: true });
      if (process.env.LLAVA_MINI_UPDATE_SCREENSHOT) fs.copyFileSync(path.join(SHOTS, 'webgpu.png'), path.join(EXAMPLE, 'screenshot.png'));

      // The sample clip: a new conversation, its frames drawn by the page at 1 fps from a <video>, the clip's suggestions.
      await page.click('#sample-clip');
      await page.waitForSelector('#preview-video:not([hidden])');
      await page.waitForFunction(() => /6 frame\(s\), one per second/.test(document.getElementById('picture-line')?.textContent ?? ''), undefined, { timeout: 60_000 });
      expect(await page.getAttribute('#conversation', 'data-turns')).toBe('0');
      const [clipAnswer] = await askInTurn(page, log, [CLIP_QUESTION]);
      expectTrue(clipAnswer, CLIP_ANSWER, CLIP_SKILL, `the page (WebGPU), the clip: ${CLIP_QUESTION}`);
      expect(clipAnswer).toMatch(/^[a-z0-9]+$/);
      await page.screenshot({ path: path.join(SHOTS, 'webgpu-clip.png'), fullPage: true });

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

  it('WASM, after a download that fails half way and is resumed; each question on its own: Node\'s answers', async () => {
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
      const answers = await converse(page, log, false);
      expect(answers).toEqual(nodeAnswers);
      expectTrueAnswers(answers, 'the page (WASM), each on its own');
      await page.screenshot({ path: path.join(SHOTS, 'wasm.png'), fullPage: true });
    } finally {
      await close();
    }
  }, 600_000);
});
