// `llava-mini batch` and `llava-mini worker` as users run them: a local run killed and resumed, the
// usage errors, and queued mode across worker processes on a real redis-server (one SIGKILLed).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { queueStatus } from '@llava-mini/batch';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
// The batch package's own test fixtures: pictures, JSONL files and a Redis to run against.
import { idCounts, readJsonl, writeImages, writeJsonl } from '../../batch/test/fixtures.js';
import { haveRedis, startRedis, type TestRedis } from '../../batch/test/redis.js';
import { cli as run, spawnCli, waitFor } from './fixtures.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-batch-'));
const modelDir = inject('modelDir');
let images: string[];
const corrupt = path.join(root, 'jobs', 'corrupt.png');

beforeAll(async () => {
  images = await writeImages(path.join(root, 'jobs', 'pictures'), 24);
  fs.writeFileSync(corrupt, Buffer.from('\x89PNG\r\n\x1a\n poisoned: not a PNG'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cli = (...args: string[]) => run(args);
const spawnBatch = (...args: string[]) => spawnCli(args);

describe('llava-mini batch (local mode)', () => {
  it('a run killed with SIGKILL resumes: every job once, the file always parses', async () => {
    const input = path.join(root, 'jobs', 'kill.jsonl');
    writeJsonl(input, images.map((f, i) => ({ id: `k${i}`, image: path.relative(path.dirname(input), f), question: 'What is this?' })));
    const output = path.join(root, 'out', 'kill.jsonl');
    const args = ['batch', '--model', modelDir, '--input', input, '--output', output, '--max-new-tokens', '3', '--device', 'cpu', '--concurrency', '2'];
    const first = spawnBatch(...args);
    await waitFor('some results', () => fs.existsSync(output) && readJsonl(output).length >= 5);
    first.child.kill('SIGKILL');
    await first.exited;
    const before = readJsonl(output).length;
    expect(before).toBeLessThan(images.length);

    const r = cli(...args);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`batch: ${images.length} jobs: ${images.length - before} answered, 0 failed, ${before} already in kill.jsonl in [\\d.]+ s`));
    const counts = idCounts(readJsonl(output));
    expect(counts.size).toBe(images.length);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(fs.existsSync(`${output}.lock`)).toBe(false);
  });

  it('usage errors: one line and a non-zero exit', () => {
    expect(cli('batch', '--input', 'x.jsonl')).toMatchObject({ code: 1, stderr: 'llava-mini: INVALID_OPTION: a local batch needs --model, --input and --output (or --queue to use a queue)\n' });
    expect(cli('batch', '--model', modelDir, '--input', path.join(root, 'nope.jsonl'), '--output', path.join(root, 'o.jsonl')).stderr).toMatch(/^llava-mini: INVALID_OPTION: cannot read the jobs file .*nope\.jsonl/);
    expect(cli('batch', '--concurrency', 'two')).toMatchObject({ code: 1, stderr: 'llava-mini: INVALID_OPTION: --concurrency must be an integer >= 1, got "two"\n' });
    expect(cli('batch', '--queue', 'http://x', '--status').stderr).toMatch(/^llava-mini: INVALID_OPTION: --queue must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(cli('batch', '--queue', 'redis://127.0.0.1:1', '--model', modelDir, '--input', 'x').stderr).toMatch(/^llava-mini: INVALID_OPTION: --model is for a local batch/);
    expect(cli('batch', '--frobnicate').code).toBe(2);
    expect(cli('batch', '--help')).toMatchObject({ code: 0, stdout: expect.stringContaining('llava-mini batch --queue redis://HOST:PORT --collect results.jsonl') });
  });
});

// In CI a missing Redis fails these tests (startRedis throws); elsewhere they are skipped without one.
const describeQueue = haveRedis || process.env.CI === 'true' ? describe : describe.skip;

describeQueue('llava-mini batch --queue and llava-mini worker (BullMQ on a real redis-server)', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
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
      spawnBatch('worker', ...q, '--model', modelDir, '--device', 'cpu', '--concurrency', '2', '--worker-name', w, '--lock-duration', '8000', '--stalled-interval', '2000', '--max-stalled', '5');
    const w1 = worker('w1');
    const w2 = worker('w2');
    const output = path.join(root, 'out', 'big.jsonl');
    const lines = () => (fs.existsSync(output) ? readJsonl(output).length : 0);

    const redisClient = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(name, { connection: redisClient });
    try {
      // The collector, killed once it has written some results, then started again.
      const c1 = spawnBatch('batch', ...q, '--collect', output);
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

      const c2 = spawnBatch('batch', ...q, '--collect', output);
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
