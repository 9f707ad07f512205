/**
 * Batch throughput (issue 15): jobs/s of `llava-mini batch` on the tiny random-weight model, with
 * image jobs of a few generated tokens, on one machine:
 *
 *   npm run bench -- batch              2 alternating rounds of 120 jobs
 *   npm run bench -- batch --quick      1 round of 60 jobs
 *   options: --record (write bench/RESULTS.md's "Batch" section)
 *
 * Rows: local mode in process (one model, no queue), then the queue on a private redis-server with
 * 1 and 2 `llava-mini worker` processes (started and ready before the clock starts; the time runs
 * from enqueue until the collector has every result in its file). Rounds alternate 1 and 2 workers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { collect, enqueue, queueStatus, runBatch } from '@llava-mini/batch';
import { ensureTinyModel, LlavaMini } from '@llava-mini/pipeline/node';
import sharp from 'sharp';
import { benchCommand, CACHE, flag, fmt, LoadMeter, log, machine, median, now, RESULTS, replaceMarked, ROOT, table } from './lib/common.js';

const QUICK = flag('quick');
const ROUNDS = QUICK ? 1 : 2;
const JOBS = QUICK ? 60 : 120;
const MAX_NEW_TOKENS = 4;
const DIR = path.join(CACHE, 'batch');
const CLI = path.join(ROOT, 'packages', 'cli', 'dist', 'cli.js');
const meter = new LoadMeter();

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** CPU seconds a child process has used so far (Linux), so the load report counts it as ours. */
function childCpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(DIR, { recursive: true });
  const model = await ensureTinyModel(path.join(DIR, 'model'));
  const pictures = path.join(DIR, 'pictures');
  fs.mkdirSync(pictures, { recursive: true });
  const input = path.join(DIR, 'jobs.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const file = path.join(pictures, `p${i}.png`);
    if (!fs.existsSync(file)) await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } }).png().toFile(file);
    lines.push(JSON.stringify({ id: `b${i}`, image: path.relative(DIR, file), question: 'What is in this picture?' }));
  }
  fs.writeFileSync(input, `${lines.join('\n')}\n`);

  const port = await freePort();
  const redisDir = fs.mkdtempSync(path.join(DIR, 'redis-'));
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 300));
  const times: Record<string, number[]> = { local: [], '1 worker': [], '2 workers': [] };
  try {
    const loaded = await LlavaMini.fromPretrained(model, { device: 'cpu' });
    for (let round = 0; round < ROUNDS; round++) {
      const out = path.join(DIR, `local-${round}.jsonl`);
      fs.rmSync(out, { force: true });
      const t = now();
      const s = await runBatch({ model: loaded, input, output: out, ask: { maxNewTokens: MAX_NEW_TOKENS } });
      times.local.push(s.answered / ((now() - t) / 1000));
      log(`local round ${round}: ${fmt(times.local.at(-1)!, 2)} jobs/s`);
    }
    await loaded.dispose();
    for (let round = 0; round < ROUNDS; round++) {
      for (const n of [1, 2]) {
        const name = `bench-${round}-${n}`;
        const workers: ChildProcess[] = Array.from({ length: n }, (_, i) =>
          spawn(process.execPath, [CLI, 'worker', '--queue', url, '--name', name, '--model', model, '--device', 'cpu', '--worker-name', `w${i}`], { stdio: 'ignore', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } }),
        );
        while ((await queueStatus({ url, name })).workers.length < n) await new Promise((r) => setTimeout(r, 100));
        const out = path.join(DIR, `queued-${round}-${n}.jsonl`);
        fs.rmSync(out, { force: true });
        const t = now();
        await enqueue({ url, name, input, ask: { maxNewTokens: MAX_NEW_TOKENS } });
        const s = await collect({ url, name, output: out, pollMs: 50 });
        const key = n === 1 ? '1 worker' : '2 workers';
        times[key].push(s.answered / ((now() - t) / 1000));
        log(`${key} round ${round}: ${fmt(times[key].at(-1)!, 2)} jobs/s`);
        for (const w of workers) meter.addOwn(childCpuSeconds(w.pid));
        await Promise.all(workers.map((w) => new Promise((r) => (w.once('exit', r), w.kill('SIGTERM')))));
      }
    }
  } finally {
    redis.kill('SIGTERM');
    await new Promise((r) => redis.once('exit', r));
    fs.rmSync(redisDir, { recursive: true, force: true });
  }

  const one = median(times['1 worker']);
  const rows = [
    ['local (`batch --model`), 1 process', fmt(median(times.local), 2), fmt(median(times.local) / one, 2)],
    ['queued, 1 worker process', fmt(one, 2), '1.00'],
    ['queued, 2 worker processes', fmt(median(times['2 workers']), 2), fmt(median(times['2 workers']) / one, 2)],
  ];
  const md = [
    '## Batch (issue 15)',
    '',
    `\`${benchCommand('batch')}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}; ${meter.report()}.`,
    `${JOBS} image jobs (distinct 64x48 PNGs, ${MAX_NEW_TOKENS} new tokens each) on the tiny random-weight model, onnxruntime-node CPU, worker concurrency 1; median of ${ROUNDS} round(s), 1 and 2 workers alternating. Queued time runs from enqueue to the last result in the collector's file (workers already loaded).`,
    '',
    table(['mode', 'jobs/s', 'vs 1 worker'], rows),
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (flag('record')) replaceMarked(RESULTS, 'batch', md);
}

await main();
