import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTinyModel, LlavaMini } from '@llava-mini/pipeline/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBatch } from '../src/index.js';
import { ASSETS, idCounts, readJsonl, writeImages, writeJsonl } from './fixtures.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-batch-local-'));
let modelDir: string;
let model: LlavaMini;
let images: string[];

beforeAll(async () => {
  modelDir = await ensureTinyModel(path.join(root, 'model'));
  model = await LlavaMini.fromPretrained(modelDir, { device: 'cpu' });
  images = await writeImages(path.join(root, 'jobs', 'pictures'), 24);
  fs.copyFileSync(path.join(ASSETS, 'clip.mp4'), path.join(root, 'jobs', 'clip.mp4'));
  fs.writeFileSync(path.join(root, 'jobs', 'corrupt.png'), Buffer.from('\x89PNG\r\n\x1a\n this is not really a PNG'));
});
afterAll(async () => {
  await model?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

const ask = { maxNewTokens: 3 };

describe('runBatch (local mode)', () => {
  it('answers images, several images, several questions and a video as the model does alone; a bad job fails alone', async () => {
    const input = path.join(root, 'jobs', 'mixed.jsonl');
    writeJsonl(input, [
      { id: 'one', image: 'pictures/img-0.png', question: 'What is in this picture?' },
      { id: 2, images: ['pictures/img-1.png', 'pictures/img-2.png'], questions: ['What is this?', 'And the colour?'], metadata: { source: 'test' } },
      { id: 'video', video: 'clip.mp4', question: 'What happens?' },
      { id: 'corrupt', image: 'corrupt.png', question: 'What is this?' },
      { id: 'missing', image: 'pictures/none.png', question: 'What is this?' },
      { id: 'typo', imgae: 'pictures/img-0.png', question: 'What is this?' },
    ]);
    const output = path.join(root, 'out', 'mixed.jsonl');
    const events: number[] = [];
    const s = await runBatch({ model, input, output, ask, onProgress: (e) => events.push(e.done) });
    expect(s).toMatchObject({ total: 6, skipped: 0, answered: 3, failed: 3, remaining: 0 });
    expect(events).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const lines = readJsonl(output);
    const byId = new Map(lines.map((l) => [String(l.id), l]));
    expect(lines.map((l) => l.id)).toEqual(['one', 2, 'video', 'corrupt', 'missing', 'typo']);

    // The same answers as asking the model directly.
    const solo = await model.ask(images[0], 'What is in this picture?', ask).done();
    expect(byId.get('one')).toMatchObject({ answer: solo.text, finishReason: solo.finishReason, usage: { promptTokens: solo.llmInputTokens, completionTokens: solo.ids.length - solo.headerTokens } });
    const chat = model.chat([images[1], images[2]]);
    const a1 = await chat.ask('What is this?', ask).done();
    const a2 = await chat.ask('And the colour?', ask).done();
    expect(byId.get('2')).toMatchObject({ answers: [a1.text, a2.text], metadata: { source: 'test' } });
    const video = await model.ask({ video: path.join(root, 'jobs', 'clip.mp4') }, 'What happens?', ask).done();
    expect(byId.get('video')?.answer).toBe(video.text);
    for (const key of ['inputMs', 'encoderMs', 'prefusionMs', 'timeToFirstTokenMs', 'totalMs']) expect(byId.get('one')?.timings[key]).toBeTypeOf('number');

    expect(byId.get('corrupt')?.error).toMatchObject({ code: 'IMAGE', message: expect.stringContaining('corrupt.png') });
    expect(byId.get('missing')?.error).toMatchObject({ code: 'IMAGE', message: expect.stringContaining('none.png') });
    expect(byId.get('typo')?.error).toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('"imgae"') });

    // A second run has nothing to do; --retry-errors runs the failed ones again (and they fail again).
    expect(await runBatch({ model, input, output, ask })).toMatchObject({ skipped: 6, answered: 0, failed: 0 });
    expect(await runBatch({ model, input, output, ask, retryErrors: true })).toMatchObject({ skipped: 3, failed: 3 });
    expect([...idCounts(readJsonl(output)).values()].every((n) => n === 1)).toBe(true);
  });

  it('a job with a json_schema answers with JSON the schema allows, as ask() does; a schema the engine refuses fails that job alone', async () => {
    const input = path.join(root, 'jobs', 'schema.jsonl');
    const schema = { type: 'object', properties: { kind: { enum: ['house', 'tree'] } }, required: ['kind'] };
    writeJsonl(input, [
      { id: 'json', image: 'pictures/img-3.png', question: 'What is this?', json_schema: schema },
      { id: 'refused', image: 'pictures/img-3.png', question: 'What is this?', json_schema: { type: 'bogus' } },
      { id: 'not-a-schema', image: 'pictures/img-3.png', question: 'What is this?', json_schema: 'kind' },
      { id: 'free', image: 'pictures/img-3.png', question: 'What is this?' },
    ]);
    const output = path.join(root, 'out', 'schema.jsonl');
    const long = { maxNewTokens: 24 };
    expect(await runBatch({ model, input, output, ask: long })).toMatchObject({ answered: 2, failed: 2 });
    const byId = new Map(readJsonl(output).map((l) => [String(l.id), l]));
    const solo = await model.ask(images[3], 'What is this?', { ...long, responseFormat: { type: 'json_schema', schema } }).done();
    expect(byId.get('json')?.answer).toBe(solo.text);
    expect(['house', 'tree']).toContain(JSON.parse(solo.text).kind);
    expect(byId.get('free')?.answer).toBe((await model.ask(images[3], 'What is this?', long).done()).text);
    expect(byId.get('refused')?.error).toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('bogus') });
    expect(byId.get('not-a-schema')?.error).toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('"json_schema"') });
  });

  it('stopping through the signal leaves the stopped jobs for the next run', async () => {
    const input = path.join(root, 'jobs', 'stop.jsonl');
    writeJsonl(input, images.slice(0, 10).map((f, i) => ({ id: `s${i}`, image: f, question: 'What is this?' })));
    const output = path.join(root, 'out', 'stop.jsonl');
    const controller = new AbortController();
    const first = await runBatch({ model, input, output, ask, concurrency: 2, signal: controller.signal, onResult: () => readJsonl(output).length >= 3 && controller.abort() });
    expect(first.remaining).toBeGreaterThan(0);
    expect(first.answered + first.remaining).toBe(10);
    const second = await runBatch({ model, input, output, ask, concurrency: 2 });
    expect(second).toMatchObject({ skipped: first.answered, answered: first.remaining, failed: 0 });
    const counts = idCounts(readJsonl(output));
    expect(counts.size).toBe(10);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});
