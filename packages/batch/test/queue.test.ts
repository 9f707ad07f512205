import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTinyModel, LlavaMini, type NodeInput } from '@llava-mini/pipeline/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchModel, collect, enqueue, queueStatus, startWorker } from '../src/index.js';
import { readJsonl, writeImages, writeJsonl } from './fixtures.js';
import { haveRedis, startRedis, type TestRedis } from './redis.js';

// In CI a missing Redis fails these tests (startRedis throws); elsewhere they are skipped without one.
// Queue names are unique per run, so a shared Redis (LLAVA_MINI_TEST_REDIS) never mixes runs.
const describeQueue = haveRedis || process.env.CI === 'true' ? describe : describe.skip;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-batch-queue-'));
let redis: TestRedis;
let modelDir: string;
let images: string[];
const corrupt = path.join(root, 'jobs', 'corrupt.png');

beforeAll(async () => {
  if (!haveRedis && process.env.CI !== 'true') return;
  redis = await startRedis();
  modelDir = await ensureTinyModel(path.join(root, 'model'));
  images = await writeImages(path.join(root, 'jobs', 'pictures'), 20);
  fs.writeFileSync(corrupt, Buffer.from('\x89PNG\r\n\x1a\n poisoned: not a PNG'));
});
afterAll(async () => {
  await redis?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

describeQueue('queued mode (BullMQ on a real redis-server)', () => {
  it('enqueue is idempotent; a transient error is retried, a bad input is not; answers match the model alone', async () => {
    const name = `lib-${process.pid}-${Date.now()}`;
    const model = await LlavaMini.fromPretrained(modelDir, { device: 'cpu' });
    // Fault injection for the retry path: the first conversation about img-3 fails as a runtime error would.
    let flaked = false;
    const flaky: BatchModel = {
      chat: (input) => {
        if (!flaked && input === images[3]) {
          flaked = true;
          throw new Error('connection reset while reading the picture');
        }
        return model.chat(input as NodeInput); // jobs hold paths, which NodeInput accepts
      },
    };
    const input = path.join(root, 'jobs', 'lib.jsonl');
    writeJsonl(input, [
      { id: 'a', image: 'pictures/img-0.png', question: 'What is this?' },
      { id: 'b', images: ['pictures/img-1.png', 'pictures/img-2.png'], questions: ['What is this?', 'And then?'] },
      { id: 'flaky', image: 'pictures/img-3.png', question: 'What is this?' },
      { id: 'poison', image: corrupt, question: 'What is this?' },
    ]);
    const ask = { maxNewTokens: 3 };
    expect(await enqueue({ url: redis.url, name, input, ask, backoffMs: 50 })).toEqual({ total: 4, added: 4, already: 0 });
    expect(await enqueue({ url: redis.url, name, input, ask, backoffMs: 50 })).toEqual({ total: 4, added: 0, already: 4 });

    const worker = await startWorker({ url: redis.url, name, model: flaky, concurrency: 2, workerName: 'lib-worker' });
    const output = path.join(root, 'out', 'lib.jsonl');
    try {
      const s = await collect({ url: redis.url, name, output, pollMs: 50 });
      expect(s).toMatchObject({ total: 4, written: 4, answered: 3, failed: 1, complete: true });
      const status = await queueStatus({ url: redis.url, name });
      expect(status).toMatchObject({ enqueued: 4, collected: 4, waiting: 0, active: 0, completed: 0, failed: 0 });
      expect(status.workers).toEqual([expect.objectContaining({ name: 'lib-worker', concurrency: 2 })]);
    } finally {
      await worker.close();
    }
    const byId = new Map(readJsonl(output).map((l) => [l.id, l]));
    expect(byId.get('flaky')).toMatchObject({ attempts: 2, worker: 'lib-worker', answer: expect.any(String) });
    expect(byId.get('poison')).toMatchObject({ attempts: 1, error: { code: 'IMAGE', message: expect.stringContaining('corrupt.png') } });
    const solo = await model.ask(images[0], 'What is this?', ask).done();
    expect(byId.get('a')).toMatchObject({ answer: solo.text, usage: { completionTokens: solo.ids.length - solo.headerTokens } });
    expect(byId.get('b')?.answers).toHaveLength(2);
    // Enqueueing again after collection still adds nothing: the queue remembers the ids.
    expect(await enqueue({ url: redis.url, name, input, ask })).toMatchObject({ added: 0, already: 4 });
    await model.dispose();
  });
});
