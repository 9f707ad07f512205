import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTinyModel, LlavaMini, type NodeInput } from '@llava-mini/pipeline/node';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchModel, collect, enqueue, queueStatus, startWorker } from '../src/index.js';
import { cli, idCounts, readJsonl, spawnCli, waitFor, writeImages, writeJsonl } from './fixtures.js';
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
    expect(byId.get('a')).toMatchObject({ answer: solo.text, usage: { completionTokens: solo.ids.length } });
    expect(byId.get('b')?.answers).toHaveLength(2);
    // Enqueueing again after collection still adds nothing: the queue remembers the ids.
    expect(await enqueue({ url: redis.url, name, input, ask })).toMatchObject({ added: 0, already: 4 });
    await model.dispose();
  });

  it('200 jobs, 2 worker processes, one SIGKILLed mid-run, the collector killed and restarted: every result exactly once', async () => {
    const name = `big-${process.pid}-${Date.now()}`;
    const input = path.join(root, 'jobs', 'big.jsonl');
    const jobs: object[] = Array.from({ length: 199 }, (_, i) => ({ id: `j${i}`, image: path.relative(path.dirname(input), images[i % images.length]), question: `What is in picture ${i}?` }));
    jobs.splice(100, 0, { id: 'poison', image: corrupt, question: 'What is this?' });
    writeJsonl(input, jobs);
    const q = ['--queue', redis.url, '--name', name];
    const enq = cli('batch', ...q, '--input', input, '--max-new-tokens', '2', '--backoff', '100');
    expect(enq).toMatchObject({ code: 0, stderr: `enqueued 200 job(s) on ${name}\n` });

    // Short locks so the killed worker's jobs come back within seconds; long enough (and enough
    // stalls allowed) that a worker starved of CPU on a busy machine does not lose live jobs.
    const worker = (w: string) =>
      spawnCli('worker', ...q, '--model', modelDir, '--device', 'cpu', '--concurrency', '2', '--worker-name', w, '--lock-duration', '8000', '--stalled-interval', '2000', '--max-stalled', '5');
    const w1 = worker('w1');
    const w2 = worker('w2');
    const output = path.join(root, 'out', 'big.jsonl');
    const lines = () => (fs.existsSync(output) ? readJsonl(output).length : 0);

    const redisClient = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(name, { connection: redisClient });
    try {
      // The collector, killed once it has written some results, then started again.
      const c1 = spawnCli('batch', ...q, '--collect', output);
      await waitFor('the first results', () => lines() >= 30, 400_000);
      c1.child.kill('SIGKILL');
      await c1.exited;

      // w1 dies with jobs in hand: those run again on w2 once their locks expire.
      await waitFor('w1 to run jobs', async () => (await queue.getActive()).some((j) => j.processedBy === 'w1'), 400_000);
      // Freeze w1 first (and let commands it already sent land), so the jobs it holds cannot finish
      // between reading them and the kill.
      w1.child.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 300));
      const inHand = (await queue.getActive()).filter((j) => j.processedBy === 'w1').map((j) => j.data.line.id);
      w1.child.kill('SIGKILL');
      await w1.exited;

      const c2 = spawnCli('batch', ...q, '--collect', output);
      expect(await c2.exited).toBe(0);
      expect(c2.output()).toMatch(/all 200 enqueued jobs have their result/);

      const results = readJsonl(output);
      const counts = idCounts(results);
      expect(counts.size).toBe(200);
      expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
      const byId = new Map(results.map((r) => [String(r.id), r]));
      expect(byId.get('poison')).toMatchObject({ error: { code: 'IMAGE' }, attempts: 1 });
      expect(results.filter((r) => r.error).map((r) => [r.id, r.error.code, r.error.message])).toEqual([['poison', 'IMAGE', expect.stringContaining('corrupt.png')]]);
      // The jobs w1 held when it was killed were finished by w2, on a later attempt.
      expect(inHand.length).toBeGreaterThan(0);
      for (const id of inHand) expect(byId.get(String(id))).toMatchObject({ worker: 'w2', attempts: expect.any(Number), answer: expect.any(String) });
      for (const id of inHand) expect(byId.get(String(id))?.attempts).toBeGreaterThanOrEqual(2);
      expect(new Set(results.map((r) => r.worker))).toEqual(new Set(['w1', 'w2']));

      const status = JSON.parse(cli('batch', ...q, '--status', '--json').stdout);
      expect(status).toMatchObject({ enqueued: 200, collected: 200, waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 });
      expect(status.workers.map((w: { name: string }) => w.name)).toContain('w2');
    } finally {
      await queue.close();
      redisClient.disconnect();
      // SIGTERM: w2 finishes what it runs and leaves.
      w2.child.kill('SIGTERM');
      expect(await w2.exited).toBe(0);
      if (w1.child.exitCode === null) w1.child.kill('SIGKILL');
    }
    expect(w2.output()).toMatch(/worker w2: stopped/);
    expect((await queueStatus({ url: redis.url, name })).workers.map((w) => w.name)).not.toContain('w2');
  }, 900_000); // about 40 s on a quiet 2-core machine; generous for a busy one
});
