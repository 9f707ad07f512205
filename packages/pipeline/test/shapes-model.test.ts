// The bundled demo model (models/llava-mini-shapes) on its held-out test set: its accuracy per
// question type is what its model card states, fp16 / q8 and onnxruntime-web's WASM stay within 1
// point of fp32 (onnxruntime-web in Node and in headless Chromium), and its greedy answers are the
// PyTorch training code's (an independent implementation of the model) on at least 99 % of the questions.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evalItems, evaluate, type EvalItem, type EvalReport, formatReport, PICTURE_QUESTION_TYPES, writeDataset } from '@llava-mini/shapes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, defaultModelDir, LlavaMini, type LoadOptions } from '../src/node.js';
import { bundlePage, HAVE_CHROMIUM, launchChromium, ORT_DIST, runPage, serve } from './chromium.js';
import type { EvalPageResult } from './shapes-page.js';

const MODEL = defaultModelDir();
/** What the model card states: the test set, and the accuracy measured on it (node CPU fp32). */
const CARD = JSON.parse(fs.readFileSync(path.join(MODEL, 'eval', 'results.json'), 'utf8')) as {
  testSet: { seed: number; count: number };
  subsetCount: number;
  fp32: { overall: number; perType: Record<string, number> };
};
const TORCH = fs
  .readFileSync(path.join(MODEL, 'eval', 'pytorch-answers.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { image: string; question: string; ids: number[] });

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-shapes-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let items: EvalItem[] = [];
let subset: EvalItem[] = [];
const subsetImages = new Set<string>();
let fp32: EvalReport;

async function run(list: EvalItem[], options: LoadOptions): Promise<EvalReport> {
  const model = await LlavaMini.fromPretrained(MODEL, options);
  try {
    return await evaluate(list, async (image, question) => {
      const r = await model.ask(image, question, { maxNewTokens: 16 }).done();
      return { text: r.text, ids: r.ids };
    });
  } finally {
    await model.dispose();
  }
}

function accuracy(r: EvalReport, only?: Set<string>): number {
  const a = only ? r.answers.filter((x) => only.has(x.image!)) : r.answers;
  return a.filter((x) => x.correct).length / a.length;
}

beforeAll(async () => {
  const data = path.join(root, 'test');
  await writeDataset(data, CARD.testSet);
  items = evalItems(data);
  subset = evalItems(data, { limit: CARD.subsetCount });
  for (const s of subset) subsetImages.add(s.image!);
  fp32 = await run(items, { device: 'cpu', dtype: 'fp32' });
  console.log(`[shapes-model] node CPU fp32 on ${items.length} held-out questions:\n${formatReport(fp32)}`);
}, 900_000);

describe('the bundled shapes model', () => {
  it('scores what its model card states on the held-out set (node CPU fp32)', () => {
    expect(fp32.overall.accuracy).toBeGreaterThanOrEqual(CARD.fp32.overall - 0.005);
    for (const t of PICTURE_QUESTION_TYPES) expect(fp32.perType[t]!.accuracy, t).toBeGreaterThanOrEqual(CARD.fp32.perType[t] - 0.01);
  });

  it('gives the PyTorch model\'s greedy tokens on >= 99 % of the questions', () => {
    const byKey = new Map(TORCH.map((a) => [`${a.image}\n${a.question}`, a.ids]));
    let same = 0;
    let compared = 0;
    for (const a of fp32.answers) {
      const ids = byKey.get(`${path.relative(path.join(root, 'test'), a.image!)}\n${a.question}`);
      if (!ids) continue;
      compared++;
      if (ids.length === a.ids.length && ids.every((t, i) => t === a.ids[i])) same++;
    }
    expect(compared).toBe(TORCH.length);
    expect(same / compared).toBeGreaterThanOrEqual(0.99);
  });

  const WASM: LoadOptions = { device: 'wasm', dtype: 'fp32' };
  const reports = new Map<LoadOptions, EvalReport>();
  for (const [name, options] of [
    ['fp16', { device: 'cpu', dtype: 'fp16' }],
    ['q8', { device: 'cpu', dtype: 'q8' }],
    ['web WASM (onnxruntime-web)', WASM],
  ] as const) {
    it(`${name} stays within 1 point of fp32`, { timeout: 900_000 }, async () => {
      const r = await run(subset, options);
      reports.set(options, r);
      const base = accuracy(fp32, subsetImages);
      console.log(`[shapes-model] ${name}: ${(100 * accuracy(r)).toFixed(1)} % vs fp32 ${(100 * base).toFixed(1)} % on ${subset.length} questions`);
      expect(Math.abs(accuracy(r) - base)).toBeLessThanOrEqual(0.01);
    });
  }

  it.skipIf(!HAVE_CHROMIUM)('onnxruntime-web WASM in headless Chromium: the same answers as Node WASM, within 1 point of fp32', { timeout: 900_000 }, async () => {
    // The browser entry loads converted folders only: convert the bundled checkpoint, serve it with the pictures.
    const model = path.join(root, 'converted');
    await convertCheckpoint(MODEL, model);
    const site = path.join(root, 'site');
    await bundlePage(path.join(__dirname, 'shapes-page.ts'), site);
    const data = path.join(root, 'test');
    const server = await serve({ '/model/': model, '/ort/': ORT_DIST, '/data/': data, '/': site });
    const o = server.origin;
    const asked = subset.map((s) => ({ image: `${o}/data/${path.relative(data, s.image!).split(path.sep).map(encodeURIComponent).join('/')}`, question: s.question }));
    fs.writeFileSync(path.join(site, 'questions.json'), JSON.stringify(asked));
    const browser = await launchChromium();
    try {
      const query = new URLSearchParams({ model: `${o}/model/`, wasm: `${o}/ort/`, questions: `${o}/questions.json`, device: 'wasm' });
      const { result, log, offsite } = await runPage<EvalPageResult>(browser, o, `${o}/index.html?${query}`, 600_000);
      expect(result.error, `page log:\n${log.join('\n')}`).toBeUndefined();
      expect(result.device).toBe('wasm');
      expect(offsite).toEqual([]);
      const answers = result.answers ?? [];
      expect(answers.length).toBe(subset.length);
      const r = await evaluate(subset, async (_image, _question) => answers.shift() as { text: string; ids: number[] });
      const base = accuracy(fp32, subsetImages);
      console.log(`[shapes-model] Chromium WASM: ${(100 * accuracy(r)).toFixed(1)} % vs fp32 ${(100 * base).toFixed(1)} % on ${subset.length} questions`);
      expect(Math.abs(accuracy(r) - base)).toBeLessThanOrEqual(0.01);
      // The same runtime as in Node: every answer's tokens are those of Node's WASM run.
      const node = reports.get(WASM) ?? (await run(subset, WASM));
      expect(r.answers.map((a) => a.ids)).toEqual(node.answers.map((a) => a.ids));
    } finally {
      await browser.close().catch(() => undefined);
      await server.close();
    }
  });

  it('q4 (reported, not held to 1 point)', { timeout: 900_000 }, async () => {
    const r = await run(subset, { device: 'cpu', dtype: 'q4' });
    console.log(`[shapes-model] q4: ${(100 * accuracy(r)).toFixed(1)} % vs fp32 ${(100 * accuracy(fp32, subsetImages)).toFixed(1)} % on ${subset.length} questions`);
    expect(r.answers.length).toBe(subset.length);
  });
});
