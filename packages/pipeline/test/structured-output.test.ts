// Structured output, logprobs and n through the browser entry in headless Chromium (WASM), held to
// the Node entry (CPU) on the same model, picture and calls: the same greedy tokens under a JSON
// schema, text that Ajv (a JSON Schema validator knowing nothing of the grammar engine) accepts, the
// same n answers and log-probabilities, and the same completions, streamed and not.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertCheckpoint, LlavaMini } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import Ajv from 'ajv';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePage, CHROMIUM, HAVE_CHROMIUM, launchChromium, ORT_DIST, runPage, serve } from './chromium.js';
import { SCHEMA, type StructuredResults, structuredCalls } from './structured-calls.js';
import type { StructuredPageResult } from './structured-page.js';

const IMAGE = path.resolve(__dirname, '../../../examples/assets/shapes.png');
/** fp32 on two runtimes' kernels: log-probabilities agree to ~1e-6; this leaves room, and no room for a wrong softmax. */
const LOGPROB_TOLERANCE = 1e-3;
if (!HAVE_CHROMIUM) console.warn(`[structured-output.test] skipped: no Chromium at ${CHROMIUM}`);

describe.skipIf(!HAVE_CHROMIUM)('structured output, logprobs and n in the browser entry (Chromium, WASM) and in Node', () => {
  let root = '';
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let node: StructuredResults;
  let web: StructuredResults;
  const valid = new Ajv({ strict: false }).compile(SCHEMA);

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-structured-'));
    // 112 px and seeded random weights: nothing but the grammar keeps the answer JSON.
    const ckpt = path.join(root, 'hf');
    await writeTinyCheckpoint(ckpt, { seed: 7, std: 0.3, imageSize: 112 });
    const modelDir = path.join(root, 'model');
    await convertCheckpoint(ckpt, modelDir);
    const site = path.join(root, 'site');
    await bundlePage(path.join(__dirname, 'structured-page.ts'), site);
    fs.copyFileSync(IMAGE, path.join(site, 'shapes.png'));
    server = await serve({ '/model/': modelDir, '/ort/': ORT_DIST, '/': site });
    browser = await launchChromium();

    const model = await LlavaMini.fromPretrained(modelDir, { device: 'cpu' });
    try {
      node = await structuredCalls(model, IMAGE, `data:image/png;base64,${fs.readFileSync(IMAGE).toString('base64')}`);
    } finally {
      await model.dispose();
    }
    const o = server.origin;
    const query = new URLSearchParams({ model: `${o}/model/`, wasm: `${o}/ort/`, image: `${o}/shapes.png` });
    const { result, log, offsite } = await runPage<StructuredPageResult>(browser, o, `${o}/index.html?${query}`, 180_000);
    expect(result.error, `page failed; page log:\n${log.join('\n')}`).toBeUndefined();
    expect(offsite).toEqual([]);
    web = result.results!;
  }, 300_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await server?.close();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('greedy tokens under a JSON schema are the same on node CPU and web WASM, and the text validates', () => {
    console.log(`[structured-output.test] node ${node.schema.text} (${node.schema.ids.length} ids); chromium wasm ${web.schema.text}`);
    expect(web.schema).toEqual(node.schema);
    expect(node.schema.finishReason).toBe('stop');
    const value: unknown = JSON.parse(node.schema.text);
    expect(valid(value), JSON.stringify(valid.errors)).toBe(true);
  });

  it('n = 3 greedy: three equal answers, the same ids and log-probabilities in both', () => {
    expect(web.choices.ids).toEqual(node.choices.ids);
    expect(node.choices.ids).toHaveLength(3);
    for (const ids of node.choices.ids) expect(ids).toEqual(node.choices.ids[0]);
    expect(web.choices.logprobs.map(({ choice, id, top }) => ({ choice, id, top }))).toEqual(node.choices.logprobs.map(({ choice, id, top }) => ({ choice, id, top })));
    node.choices.logprobs.forEach((t, i) => {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(Math.abs(web.choices.logprobs[i].logprob - t.logprob)).toBeLessThan(LOGPROB_TOLERANCE);
    });
  });

  it('chat.completions.create with response_format json_schema, n and top_logprobs: the same in both, every choice valid', () => {
    const strip = (r: StructuredResults) => r.completion.choices.map((c) => ({ ...c, logprobs: c.logprobs?.content?.map((t) => ({ ...t, logprob: 0, top_logprobs: t.top_logprobs.map((x) => x.token) })) }));
    expect(strip(web)).toEqual(strip(node));
    expect(web.completion.usage).toEqual(node.completion.usage);
    for (const c of node.completion.choices) {
      expect(c.finish_reason).toBe('stop');
      expect(valid(JSON.parse(c.message.content)), c.message.content).toBe(true);
      expect(c.logprobs?.content?.length).toBeGreaterThan(0);
      for (const t of c.logprobs!.content!) expect(t.top_logprobs).toHaveLength(2);
    }
    node.completion.choices.forEach((c, i) =>
      c.logprobs!.content!.forEach((t, j) => expect(Math.abs(web.completion.choices[i].logprobs!.content![j].logprob - t.logprob)).toBeLessThan(LOGPROB_TOLERANCE)),
    );
  });

  it('streamed json_object answers: the same text in both, objects where they ended', () => {
    expect(web.streamed).toEqual(node.streamed);
    node.streamed.content.forEach((text, i) => {
      expect(text.startsWith('{')).toBe(true);
      if (node.streamed.finish[i] === 'stop') expect(typeof JSON.parse(text)).toBe('object');
    });
  });
});
