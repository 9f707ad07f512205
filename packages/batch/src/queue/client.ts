import { InvalidOptionError, type ProgressCallback } from '@llava-mini/core';
import type { AskOptions } from '@llava-mini/pipeline';
import { type Job as BullJob, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Answered, JobError, ResultLine } from '../answer.js';
import { jobKey, type JobLine, readJobsFile, resolvePaths } from '../jobs.js';
import { ResultLog } from '../results.js';
import { bullJobId, checkAddress, connect, keys, type QueueAddress } from './connection.js';

/** What a queued job carries: its line (paths made absolute) and the generation options of its batch. */
export interface QueuedJob {
  line: JobLine;
  ask: AskSettings;
}

export type AskSettings = Omit<AskOptions, 'signal' | 'onProgress' | 'onToken'>;

/** Open the queue and a plain connection for our own keys; `use` runs with both, then both close. */
async function withQueue<T>(address: QueueAddress, role: string, use: (queue: Queue<QueuedJob, Answered>, redis: Redis, k: ReturnType<typeof keys>) => Promise<T>): Promise<T> {
  const a = checkAddress(address);
  const redis = connect(a.url, role);
  const queue = new Queue<QueuedJob, Answered>(a.name, { connection: redis });
  try {
    await queue.waitUntilReady();
    return await use(queue, redis, keys(a.name));
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

export interface EnqueueOptions extends QueueAddress {
  /** The JSONL jobs file; relative paths resolve against its folder (workers must see the same paths). */
  input: string;
  ask?: AskSettings;
  /** Tries per job for transient errors (default 3); a bad input is never retried. */
  attempts?: number;
  /** First retry delay; it doubles each try (default 1000 ms). */
  backoffMs?: number;
}

export interface EnqueueSummary {
  total: number;
  added: number;
  /** Ids this queue had been given before (by an earlier enqueue): left alone. */
  already: number;
}

const CHUNK = 500;

/**
 * Put a jobs file's jobs on the queue. Idempotent by job id: an id the queue has seen (waiting,
 * running, finished or already collected) is not added again, so enqueueing the same file twice,
 * or after a crash part-way, adds each job once.
 */
export async function enqueue(o: EnqueueOptions): Promise<EnqueueSummary> {
  const attempts = o.attempts ?? 3;
  const delay = o.backoffMs ?? 1000;
  if (!Number.isSafeInteger(attempts) || attempts < 1) throw new InvalidOptionError(`attempts must be an integer >= 1, got ${String(attempts)}`);
  if (!Number.isFinite(delay) || delay < 0) throw new InvalidOptionError(`backoff must be a number of ms >= 0, got ${String(delay)}`);
  const jobs = await readJobsFile(o.input);
  return withQueue(o, 'enqueue', async (queue, redis, k) => {
    const summary: EnqueueSummary = { total: jobs.lines.length, added: 0, already: 0 };
    for (let i = 0; i < jobs.lines.length; i += CHUNK) {
      const chunk = jobs.lines.slice(i, i + CHUNK);
      const seen = await redis.smismember(k.ids, ...chunk.map((l) => jobKey(l.raw.id)));
      const fresh = chunk.filter((_, j) => seen[j] === 0);
      summary.already += chunk.length - fresh.length;
      if (!fresh.length) continue;
      // Add first, then record the ids: a crash between the two re-adds on the next run, which
      // BullMQ ignores for a job it still holds (same job id), and the collector drops as a duplicate otherwise.
      await queue.addBulk(
        fresh.map((l) => ({
          name: 'ask',
          data: { line: resolvePaths(l.raw, jobs.baseDir), ask: o.ask ?? {} },
          opts: { jobId: bullJobId(l.raw.id), attempts, backoff: { type: 'exponential', delay }, removeOnComplete: false, removeOnFail: false },
        })),
      );
      await redis.sadd(k.ids, ...fresh.map((l) => jobKey(l.raw.id)));
      summary.added += fresh.length;
    }
    return summary;
  });
}

export interface CollectOptions extends QueueAddress {
  /** The JSONL results file (appended to; ids it has are not written again). */
  output: string;
  /** How often to look for finished jobs when none are waiting to be drained (default 250 ms). */
  pollMs?: number;
  /** Stop collecting (what was written stays; collecting again resumes). */
  signal?: AbortSignal;
  /** `{ task: 'collect', done, total, unit: 'jobs' }`: results collected of the jobs enqueued. */
  onProgress?: ProgressCallback;
  onResult?: (result: ResultLine) => void;
}

export interface CollectSummary {
  /** Jobs ever enqueued on this queue. */
  total: number;
  /** Results written by this run. */
  written: number;
  answered: number;
  failed: number;
  /** False when stopped through `signal` before every job had its result. */
  complete: boolean;
  repairedBytes: number;
  elapsedMs: number;
}

/** A job's stored failure as `{ code, message }`: workers throw `CODE: message`. */
export function parseFailure(reason: string | undefined): JobError {
  const m = /^([A-Z][A-Z_]*): ([\s\S]*)$/.exec(reason ?? '');
  if (m) return { code: m[1], message: m[2] };
  if (/stalled/i.test(reason ?? '')) return { code: 'STALLED', message: reason ?? '' };
  return { code: 'INTERNAL', message: reason || 'the job failed' };
}

function resultOf(job: BullJob<QueuedJob, Answered>, failed: boolean): ResultLine {
  const { id, metadata } = job.data.line;
  const head = { id, ...(metadata !== undefined && { metadata }) };
  const tail = { worker: job.processedBy, attempts: job.attemptsStarted };
  return failed ? { ...head, error: parseFailure(job.failedReason), ...tail } : { ...head, ...job.returnvalue, ...tail };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Drain the queue's finished jobs into a results file until every enqueued job has its result or
 * error. Each result is on disk (fsync) before its job leaves Redis, and the file never holds an id
 * twice, so a collector killed at any point and started again writes every result exactly once.
 */
export async function collect(o: CollectOptions): Promise<CollectSummary> {
  const started = performance.now();
  const log = await ResultLog.open(o.output);
  const summary: CollectSummary = { total: 0, written: 0, answered: 0, failed: 0, complete: false, repairedBytes: log.recovery.tornBytes, elapsedMs: 0 };
  try {
    await withQueue(o, 'collect', async (queue, redis, k) => {
      while (!o.signal?.aborted) {
        const finished = [
          ...(await queue.getJobs(['completed'], 0, CHUNK - 1, true)).map((j) => [j, false] as const),
          ...(await queue.getJobs(['failed'], 0, CHUNK - 1, true)).map((j) => [j, true] as const),
        ].filter(([j]) => j?.data?.line !== undefined);
        if (finished.length) {
          const lines = finished.filter(([j]) => !log.has(j.data.line.id)).map(([j, failed]) => resultOf(j, failed));
          await log.append(lines);
          for (const r of lines) {
            summary.written++;
            if ('error' in r) summary.failed++;
            else summary.answered++;
            o.onResult?.(r);
          }
          // Only once the file has them: mark collected, then drop the jobs from Redis.
          const ids = finished.map(([j]) => jobKey(j.data.line.id));
          await redis.multi().sadd(k.collected, ...ids).sadd(k.ids, ...ids).exec();
          await Promise.all(finished.map(([j]) => j.remove()));
        }
        const [total, collected] = (await redis.multi().scard(k.ids).scard(k.collected).exec())!.map(([, n]) => Number(n));
        summary.total = total;
        o.onProgress?.({ task: 'collect', done: collected, total, unit: 'jobs' });
        if (collected >= total) {
          summary.complete = true;
          return;
        }
        if (!finished.length) await sleep(o.pollMs ?? 250, o.signal);
      }
    });
  } finally {
    await log.close();
    summary.elapsedMs = performance.now() - started;
  }
  return summary;
}

export interface WorkerStatus {
  name: string;
  host: string;
  pid: number;
  concurrency: number;
  startedAt: number;
  lastSeen: number;
  done: number;
  failed: number;
  /** Jobs this worker finished in the last minute. */
  lastMinute: number;
}

export interface QueueStatus {
  name: string;
  enqueued: number;
  collected: number;
  waiting: number;
  active: number;
  delayed: number;
  /** Finished and not yet collected. */
  completed: number;
  failed: number;
  /** Jobs completed per minute, newest minute first (BullMQ's metrics, last 10 minutes). */
  completedPerMinute: number[];
  workers: WorkerStatus[];
}

/** Queue depth, what is finished and collected, and every live worker's throughput. */
export async function queueStatus(address: QueueAddress): Promise<QueueStatus> {
  const name = checkAddress(address).name;
  return withQueue(address, 'status', async (queue, redis, k) => {
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
    const [enqueued, collected] = (await redis.multi().scard(k.ids).scard(k.collected).exec())!.map(([, n]) => Number(n));
    const metrics = await queue.getMetrics('completed', 0, 9);
    const workers: WorkerStatus[] = [];
    for (const w of await redis.smembers(k.workers)) {
      const h = await redis.hgetall(k.worker(w));
      // A worker's key expires when it stops beating (killed, or its machine gone).
      if (!h.host) {
        await redis.srem(k.workers, w);
        continue;
      }
      workers.push({ name: w, host: h.host, pid: Number(h.pid), concurrency: Number(h.concurrency), startedAt: Number(h.startedAt), lastSeen: Number(h.lastSeen), done: Number(h.done ?? 0), failed: Number(h.failed ?? 0), lastMinute: Number(h.lastMinute ?? 0) });
    }
    return {
      name,
      enqueued,
      collected,
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      active: counts.active ?? 0,
      delayed: counts.delayed ?? 0,
      completed: counts.completed ?? 0,
      failed: counts.failed ?? 0,
      completedPerMinute: metrics.data.map(Number),
      workers: workers.sort((a, b) => a.name.localeCompare(b.name)),
    };
  });
}
