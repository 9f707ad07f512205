// `llava-mini batch` and `llava-mini worker` over @llava-mini/batch, loaded by the top program
// (../cli.ts) when one of them runs. Errors the library raises on purpose propagate to it and print
// as one line.
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { integerOption, InvalidOptionError, numberOption } from '@llava-mini/core';
import { type AskSettings, collect, DEFAULT_QUEUE, enqueue, queueStatus, readJobsFile, type ResultLine, runBatch, startWorker } from '@llava-mini/batch';
import { checkDtype, LlavaMini, type NodeDeviceRequest } from '@llava-mini/pipeline/node';
import { deviceOption, dtypeOption } from '../flags.js';
import { BatchProgressView } from './progress.js';
import { printStatus } from './status.js';

const err = (s: string) => process.stderr.write(s);

const int = (flag: string, min = 1) => (v: string) => integerOption(v, flag, min);
const num = (flag: string) => (v: string) => numberOption(v, flag);

interface LoadFlags {
  model: string;
  device: string;
  dtype?: string;
  maxFrames?: number;
}

interface AskFlags {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
}

const loadOptions = (cmd: Command) =>
  cmd
    .addOption(deviceOption('where to run', 'auto'))
    .addOption(dtypeOption('--dtype <dtype>', 'weight type (must match a converted model)'))
    .option('--max-frames <n>', 'most frames per video', int('--max-frames'));

const askOptions = (cmd: Command) =>
  cmd
    .option('--max-new-tokens <n>', 'most tokens per answer', int('--max-new-tokens'), 512)
    .option('--temperature <t>', '0 = greedy (default), as the reference', num('--temperature'))
    .option('--top-p <p>', 'nucleus sampling', num('--top-p'))
    .option('--top-k <k>', 'top-k sampling', int('--top-k'))
    .option('--seed <n>', 'seed for reproducible sampling', int('--seed', 0));

function askSettings(f: AskFlags): AskSettings {
  const s: AskSettings = { maxNewTokens: f.maxNewTokens };
  if (f.temperature !== undefined) s.temperature = f.temperature;
  if (f.topP !== undefined) s.topP = f.topP;
  if (f.topK !== undefined) s.topK = f.topK;
  if (f.seed !== undefined) s.seed = f.seed;
  return s;
}

async function load(f: LoadFlags, view: BatchProgressView): Promise<LlavaMini> {
  return LlavaMini.fromPretrained(f.model, {
    device: f.device as NodeDeviceRequest,
    dtype: f.dtype === undefined ? undefined : checkDtype(f.dtype, '--dtype'),
    maxFrames: f.maxFrames,
    logger: (m) => err(`${m}\n`),
    onProgress: view.callback,
  });
}

/** Abort on the first SIGINT/SIGTERM; the exit code says which signal stopped the run. */
function stopOnSignals(): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((s) => {
    const h = () => {
      process.exitCode = s === 'SIGINT' ? 130 : 143;
      controller.abort();
    };
    process.once(s, h);
    return [s, h] as const;
  });
  return { signal: controller.signal, release: () => handlers.forEach(([s, h]) => process.removeListener(s, h)) };
}

const rate = (n: number, ms: number) => `${(n / (ms / 1000)).toFixed(2)} jobs/s`;

interface BatchFlags extends Partial<LoadFlags>, AskFlags {
  input?: string;
  output?: string;
  concurrency: number;
  retryErrors?: boolean;
  queue?: string;
  name: string;
  collect?: string;
  status?: boolean;
  json?: boolean;
  attempts: number;
  backoff: number;
}

function batchProgram(): Command {
  const cmd = new Command('llava-mini batch')
    .description('answer a JSONL of jobs, one {"id", "image"|"images"|"video", "question"|"questions"} a line, here or on a Redis queue')
    .addHelpText(
      'after',
      `
Here:        llava-mini batch --model DIR --input jobs.jsonl --output results.jsonl [--concurrency N]
On a queue:  llava-mini batch --queue redis://HOST:PORT --input jobs.jsonl        enqueue (workers: llava-mini worker)
             llava-mini batch --queue redis://HOST:PORT --collect results.jsonl   wait for every result
             llava-mini batch --queue redis://HOST:PORT --status                  depth and worker throughput`,
    )
    .option('--model <dir>', 'a converted model folder (local mode)')
    .option('--input <jobs.jsonl>', 'the jobs; relative paths resolve against its folder')
    .option('--output <results.jsonl>', 'results, appended; ids already there are skipped (local mode)')
    .option('--concurrency <n>', 'jobs in flight at once (local mode)', int('--concurrency'), 1)
    .option('--retry-errors', 'run again the jobs that have an error line in the output')
    .option('--queue <url>', 'a Redis URL: enqueue, collect or show status instead of running here')
    .option('--name <queue>', 'the queue name', DEFAULT_QUEUE)
    .option('--collect <results.jsonl>', 'drain results into this file until every enqueued job has one')
    .option('--status', 'show queue depth and per-worker throughput')
    .option('--json', 'with --status: one JSON object')
    .option('--attempts <n>', 'tries per job for transient errors (queued mode)', int('--attempts'), 3)
    .option('--backoff <ms>', 'first retry delay, doubling each try (queued mode)', int('--backoff', 0), 1000);
  loadOptions(askOptions(cmd));
  return cmd.action(async (f: BatchFlags) => (f.queue ? queued(f) : local(f)));
}

async function local(f: BatchFlags): Promise<void> {
  for (const flag of ['collect', 'status'] as const) if (f[flag]) throw new InvalidOptionError(`--${flag} needs --queue`);
  if (!f.model || !f.input || !f.output) throw new InvalidOptionError('a local batch needs --model, --input and --output (or --queue to use a queue)');
  // A jobs file that cannot run at all is refused before the (slow) model load.
  await readJobsFile(f.input);
  const view = new BatchProgressView();
  const stop = stopOnSignals();
  const model = await load(f as LoadFlags, view);
  try {
    const s = await runBatch({
      model,
      input: f.input,
      output: f.output,
      concurrency: f.concurrency,
      ask: askSettings(f),
      retryErrors: f.retryErrors,
      signal: stop.signal,
      onProgress: view.callback,
      onResult: (r) => void ('error' in r && view.failed++),
    });
    view.stop();
    if (s.repairedBytes) err(`${f.output}: cut off a torn last line (${s.repairedBytes} bytes) left by an interrupted run\n`);
    const ran = s.answered + s.failed;
    err(
      `batch: ${s.total} jobs: ${s.answered} answered, ${s.failed} failed${s.skipped ? `, ${s.skipped} already in ${path.basename(f.output)}` : ''}` +
        `${s.remaining ? `, ${s.remaining} not run (stopped; run again to continue)` : ''} in ${(s.elapsedMs / 1000).toFixed(1)} s${ran ? ` (${rate(ran, s.elapsedMs)})` : ''} -> ${f.output}\n`,
    );
  } finally {
    view.stop();
    stop.release();
    await model.dispose();
  }
}

async function queued(f: BatchFlags): Promise<void> {
  for (const flag of ['model', 'output'] as const) {
    if (f[flag]) throw new InvalidOptionError(`--${flag} is for a local batch; with --queue, workers load the model (llava-mini worker --model) and --collect names the results file`);
  }
  if (!f.input && !f.collect && !f.status) throw new InvalidOptionError('with --queue, give --input (enqueue), --collect (results) or --status');
  const address = { url: f.queue!, name: f.name };
  if (f.input) {
    const s = await enqueue({ ...address, input: f.input, ask: askSettings(f), attempts: f.attempts, backoffMs: f.backoff });
    err(`enqueued ${s.added} job(s) on ${f.name}${s.already ? `; ${s.already} were already queued` : ''}\n`);
  }
  if (f.collect) {
    const view = new BatchProgressView();
    const stop = stopOnSignals();
    try {
      const s = await collect({ ...address, output: f.collect, signal: stop.signal, onProgress: view.callback, onResult: (r: ResultLine) => void ('error' in r && view.failed++) });
      view.stop();
      if (s.repairedBytes) err(`${f.collect}: cut off a torn last line (${s.repairedBytes} bytes) left by an interrupted run\n`);
      err(
        `collect: ${s.written} result(s) written (${s.answered} answered, ${s.failed} failed) in ${(s.elapsedMs / 1000).toFixed(1)} s -> ${f.collect}` +
          `${s.complete ? `; all ${s.total} enqueued jobs have their result` : '; stopped before every job had a result (run again to continue)'}\n`,
      );
    } finally {
      view.stop();
      stop.release();
    }
  }
  if (f.status) printStatus(await queueStatus(address), f.json === true);
}

interface WorkerFlags extends LoadFlags {
  queue: string;
  name: string;
  concurrency: number;
  workerName?: string;
  lockDuration: number;
  stalledInterval: number;
  maxStalled: number;
}

function workerProgram(): Command {
  const cmd = new Command('llava-mini worker')
    .description('answer the jobs of a Redis queue (any number of workers, on any machines); SIGTERM finishes the running jobs, then exits')
    .requiredOption('--queue <url>', 'the Redis URL the batch was enqueued on')
    .requiredOption('--model <dir>', 'a converted model folder')
    .option('--name <queue>', 'the queue name', DEFAULT_QUEUE)
    .option('--concurrency <n>', 'jobs in flight at once', int('--concurrency'), 1)
    .option('--worker-name <name>', 'shown by --status (default host:pid)')
    .option('--lock-duration <ms>', "a job's lock; a dead worker's jobs run elsewhere after it expires", int('--lock-duration'), 30_000)
    .option('--stalled-interval <ms>', 'how often to look for jobs of dead workers', int('--stalled-interval'), 30_000)
    .option('--max-stalled <n>', 'times a job may be taken from a dead worker before it fails', int('--max-stalled', 0), 2);
  loadOptions(cmd);
  return cmd.action(worker);
}

async function worker(f: WorkerFlags): Promise<void> {
  const view = new BatchProgressView();
  const model = await load(f, view);
  view.stop();
  const w = await startWorker({
    url: f.queue,
    name: f.name,
    model,
    concurrency: f.concurrency,
    workerName: f.workerName,
    lockDurationMs: f.lockDuration,
    stalledIntervalMs: f.stalledInterval,
    maxStalledCount: f.maxStalled,
  });
  err(`worker ${w.name}: taking jobs from ${f.name} (concurrency ${f.concurrency}); SIGTERM or Ctrl-C finishes the running jobs and exits\n`);
  await new Promise<void>((resolve) => {
    let signals = 0;
    const stop = () => {
      if (++signals === 1) {
        err(`worker ${w.name}: finishing the running jobs (again to abandon them to other workers)\n`);
        void w.close().then(resolve);
        return;
      }
      // Leave at once, whatever state Redis is in: the jobs' locks expire and other workers take them.
      err(`worker ${w.name}: abandoning the running jobs to other workers\n`);
      process.exit(1);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await model.dispose();
  err(`worker ${w.name}: stopped\n`);
}

/** Entry for the llava-mini CLI: `command` is 'batch' or 'worker', `argv` the words after it. */
export async function main(command: string, argv: string[]): Promise<void> {
  const program = command === 'worker' ? workerProgram() : batchProgram();
  try {
    await program.exitOverride().showHelpAfterError().parseAsync(argv, { from: 'user' });
  } catch (e) {
    // Commander has printed the usage error (or the help); exit as the llava-mini CLI does.
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    throw e;
  }
}
