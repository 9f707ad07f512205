import * as os from 'node:os';
import { InvalidOptionError } from '@llava-mini/core';
import { type Job as BullJob, MetricsTime, UnrecoverableError, Worker } from 'bullmq';
import { type Answered, answerJob, BAD_INPUT_CODES, type BatchModel, toJobError } from '../answer.js';
import { parseJob } from '../jobs.js';
import type { QueuedJob } from './client.js';
import { checkAddress, connect, keys, type QueueAddress } from './connection.js';

export interface WorkerOptions extends QueueAddress {
  model: BatchModel;
  /** Jobs this worker runs at once (default 1). */
  concurrency?: number;
  /** Shown by `--status` and stored on the jobs it runs; default `host:pid`. */
  workerName?: string;
  /**
   * How long a job's lock lasts without renewal (default 30 000 ms). A worker renews its locks
   * every half of this while alive; when it dies, its jobs are taken up again once the lock has
   * expired and a stalled check (every `stalledIntervalMs`, default 30 000) has seen it.
   */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Times a job may be taken from a dead worker before it fails as STALLED (default 2). */
  maxStalledCount?: number;
  /** Called after each job with its id and whether it was answered. */
  onJob?: (id: string | number, ok: boolean) => void;
}

export interface BatchWorker {
  readonly name: string;
  /** Stop taking jobs, finish those running (or with `force`, abandon them to another worker), leave. */
  close(force?: boolean): Promise<void>;
}

const BEAT_MS = 5_000;

/**
 * Take jobs from the queue and answer them with `model`. A bad input (a corrupt image, a prompt
 * too long) fails its job at once; any other error is retried with backoff by BullMQ. The answer is
 * the job's return value: the collector turns it into a result line.
 */
export async function startWorker(o: WorkerOptions): Promise<BatchWorker> {
  const a = checkAddress(o);
  const concurrency = o.concurrency ?? 1;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new InvalidOptionError(`concurrency must be an integer >= 1, got ${String(concurrency)}`);
  const name = o.workerName ?? `${os.hostname()}:${process.pid}`;
  const k = keys(a.name);
  const redis = connect(a.url, 'worker');
  const stats = { done: 0, failed: 0 };
  const recent: number[] = [];

  const finished = (id: string | number, ok: boolean) => {
    if (ok) stats.done++;
    else stats.failed++;
    recent.push(Date.now());
    o.onJob?.(id, ok);
  };

  const processor = async (job: BullJob<QueuedJob, Answered>): Promise<Answered> => {
    try {
      const parsed = parseJob(job.data.line);
      const answered = await answerJob(o.model, parsed, job.data.ask);
      finished(job.data.line.id, true);
      return answered;
    } catch (e) {
      const err = toJobError(e);
      finished(job.data?.line?.id ?? job.id ?? '?', false);
      // The collector reads `CODE: message` back from the job's failedReason.
      if (BAD_INPUT_CODES.has(err.code)) throw new UnrecoverableError(`${err.code}: ${err.message}`);
      throw new Error(`${err.code}: ${err.message}`);
    }
  };

  const worker = new Worker<QueuedJob, Answered>(a.name, processor, {
    connection: redis,
    concurrency,
    name,
    lockDuration: o.lockDurationMs ?? 30_000,
    stalledInterval: o.stalledIntervalMs ?? 30_000,
    maxStalledCount: o.maxStalledCount ?? 2,
    metrics: { maxDataPoints: MetricsTime.ONE_WEEK },
    autorun: false,
  });
  // Errors of the worker itself (a lost Redis connection it will retry) must not crash the process.
  worker.on('error', () => undefined);
  await worker.waitUntilReady();

  const startedAt = Date.now();
  const beat = async () => {
    const t = Date.now();
    while (recent.length && recent[0] < t - 60_000) recent.shift();
    await redis
      .multi()
      .sadd(k.workers, name)
      .hset(k.worker(name), { host: os.hostname(), pid: process.pid, concurrency, startedAt, lastSeen: t, done: stats.done, failed: stats.failed, lastMinute: recent.length })
      .pexpire(k.worker(name), BEAT_MS * 4)
      .exec();
  };
  await beat();
  const timer = setInterval(() => void beat().catch(() => undefined), BEAT_MS);
  timer.unref();
  void worker.run();

  let closing: Promise<void> | undefined;
  return {
    name,
    close(force = false) {
      if (force) return worker.close(true).then(() => redis.disconnect());
      closing ??= (async () => {
        await worker.close();
        clearInterval(timer);
        // Bounded: with Redis gone the command would wait for it forever (the key expires anyway).
        const forget = redis.multi().srem(k.workers, name).del(k.worker(name)).exec().catch(() => undefined);
        await Promise.race([forget, new Promise((r) => setTimeout(r, 2000).unref())]);
        redis.disconnect();
      })();
      return closing;
    },
  };
}
