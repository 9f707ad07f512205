import { AbortError, InvalidOptionError, type ProgressCallback } from '@llava-mini/core';
import type { AskOptions } from '@llava-mini/pipeline';
import { answerJob, type BatchModel, type ResultLine, toJobError } from './answer.js';
import { parseJob, readJobsFile, resolvePaths } from './jobs.js';
import { ResultLog } from './results.js';

export interface BatchOptions {
  /** A loaded model (`await LlavaMini.fromPretrained(dir)`). */
  model: BatchModel;
  /** The JSONL jobs file; relative paths in it resolve against its folder. */
  input: string;
  /** The JSONL results file: appended to, and read first to skip the jobs it already has. */
  output: string;
  /** Jobs in flight at once (default 1). */
  concurrency?: number;
  /** Generation options for every question (maxNewTokens, temperature, ...). */
  ask?: Omit<AskOptions, 'signal' | 'onProgress' | 'onToken'>;
  /** Run the jobs that have an error line again (their error lines are removed first). */
  retryErrors?: boolean;
  /** Stops taking jobs and aborts those in flight; they get no line and run on the next run. */
  signal?: AbortSignal;
  /** `{ task: 'batch', done, total, unit: 'jobs' }` after every job (done counts jobs already in the output). */
  onProgress?: ProgressCallback;
  /** Every result as it is written. */
  onResult?: (result: ResultLine) => void;
}

export interface BatchSummary {
  total: number;
  /** Jobs the output already had. */
  skipped: number;
  answered: number;
  failed: number;
  /** Jobs not run because the batch was stopped. */
  remaining: number;
  /** A torn last line a crash left in the output, cut off on opening (bytes). */
  repairedBytes: number;
  elapsedMs: number;
}

/**
 * Answer every job of a JSONL file on one machine. Results are appended durably as they finish;
 * a job that fails (a corrupt image, a prompt too long) gets an error line and the batch goes on.
 * Running it again continues where it stopped.
 */
export async function runBatch(o: BatchOptions): Promise<BatchSummary> {
  const concurrency = o.concurrency ?? 1;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new InvalidOptionError(`concurrency must be an integer >= 1, got ${String(concurrency)}`);
  const started = performance.now();
  const jobs = await readJobsFile(o.input);
  const log = await ResultLog.open(o.output, { retryErrors: o.retryErrors });
  const summary: BatchSummary = { total: jobs.lines.length, skipped: 0, answered: 0, failed: 0, remaining: 0, repairedBytes: log.recovery.tornBytes, elapsedMs: 0 };
  try {
    const todo = jobs.lines.filter((l) => !log.has(l.raw.id));
    summary.skipped = summary.total - todo.length;
    const progress = () => o.onProgress?.({ task: 'batch', done: summary.skipped + summary.answered + summary.failed, total: summary.total, unit: 'jobs' });
    progress();
    let next = 0;
    const lane = async () => {
      while (next < todo.length && !o.signal?.aborted) {
        const { raw } = todo[next++];
        let result: ResultLine;
        try {
          const job = parseJob(resolvePaths(raw, jobs.baseDir));
          const answered = await answerJob(o.model, job, { ...o.ask, signal: o.signal });
          result = { id: raw.id, ...(job.metadata !== undefined && { metadata: job.metadata }), ...answered };
          summary.answered++;
        } catch (e) {
          // A stopped job is not a failed one: it gets no line and runs next time.
          if (e instanceof AbortError && o.signal?.aborted) break;
          result = { id: raw.id, ...(raw.metadata !== undefined && { metadata: raw.metadata }), error: toJobError(e) };
          summary.failed++;
        }
        await log.append([result]);
        o.onResult?.(result);
        progress();
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, lane));
    summary.remaining = todo.length - summary.answered - summary.failed;
  } finally {
    await log.close();
    summary.elapsedMs = performance.now() - started;
  }
  return summary;
}
