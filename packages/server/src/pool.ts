// A pool of workers (threads, or processes: worker-handle.ts), each with a loaded model and up to
// `parallel` requests at a time (their conversations decode in one batched run where the model's
// graph allows it), in front of a bounded FIFO queue. A full queue refuses at once (429); a
// cancelled request leaves the queue, or is aborted in its worker, and its slot goes to the next one.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ErrorCode, LlavaMiniError } from '@llava-mini/core';
import type { ChatCompletion, ChatCompletionChunk } from '@llava-mini/pipeline';
import { type ApiError, fromLibraryError, type HttpError, httpError, type SerializedError } from './errors.js';
import type { FromWorker, ToWorker, WorkerInit, WorkerStats } from './protocol.js';
import { type Isolation, startWorker, type WorkerHandle } from './worker-handle.js';

export interface JobHandlers {
  onChunk(chunk: ChatCompletionChunk): void;
  onDone(completion?: ChatCompletion): void;
  onError(error: ApiError): void;
  /** The job left the queue for a worker. */
  onStart?(): void;
}

interface Job extends JobHandlers {
  id: number;
  body: Record<string, unknown>;
  transfer: ArrayBuffer[];
  worker?: Slot;
  settled: boolean;
}

interface Slot {
  worker: WorkerHandle;
  ready: boolean;
  jobs: Set<Job>;
  /** What the worker last reported of its caches (kept if a later ask goes unanswered). */
  stats: WorkerStats;
  askStats?: (s: WorkerStats) => void;
  /** Why the worker stopped, when it threw or ran out of memory. */
  crash?: string;
  /** Stopping after an error outside any request: takes no more requests, already replaced. */
  failed?: boolean;
}

const NO_STATS: WorkerStats = { kvBytes: 0, pictureBytes: 0, pictureEntries: 0, running: 0, heapBytes: 0 };
/** Waits between tries to replace a worker that died when its replacement cannot load (the model's files gone, memory short). */
const RESPAWN_DELAYS_MS = [0, 1_000, 5_000, 30_000];

export type PoolState = 'loading' | 'ready' | 'draining' | 'closed';

/** The built worker beside this module; from source (the tests), the one the build wrote. */
function workerFile(): URL {
  const beside = new URL('./worker.js', import.meta.url);
  return existsSync(fileURLToPath(beside)) ? beside : new URL('../dist/worker.js', import.meta.url);
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private drained?: () => void;
  /** Failed tries to replace workers since one last loaded. */
  private respawnFailures = 0;
  state: PoolState = 'loading';
  /** Resolves once every worker has loaded the model; rejects with the first load error. */
  readonly ready: Promise<void>;

  constructor(
    private readonly init: WorkerInit & { workers: number; parallel: number; queue: number; isolation: Isolation },
    private readonly log: (message: string) => void = () => {},
    private readonly onChange: () => void = () => {},
    /** A worker stopped a generation whose client had gone away. */
    private readonly onCancelled: () => void = () => {},
    /** A worker that died while serving is being replaced. */
    private readonly onRestart: () => void = () => {},
  ) {
    const loads = Array.from({ length: init.workers }, () => this.spawn());
    this.ready = Promise.all(loads).then(() => {
      if (this.state === 'loading') this.state = 'ready';
      this.onChange();
    });
    this.ready.catch(() => {});
  }

  get running(): number {
    return this.slots.reduce((n, s) => n + s.jobs.size, 0);
  }

  get queued(): number {
    return this.queue.length;
  }

  get readyWorkers(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  /** Whether a request would be taken now (a free worker or room in the queue). */
  hasRoom(): boolean {
    return this.slots.some((s) => this.free(s)) || this.queue.length < this.init.queue;
  }

  /** Whether any worker is loaded or loading: none once every worker died and none could be replaced yet. */
  get hasWorkers(): boolean {
    return this.slots.length > 0;
  }

  /** What every loaded worker holds now: each is asked, one that does not answer within a second counts with its last report. */
  async stats(): Promise<WorkerStats> {
    const each = await Promise.all(
      this.slots
        .filter((s) => s.ready)
        .map(
          (s) =>
            new Promise<WorkerStats>((resolve) => {
              const timer = setTimeout(() => resolve(s.stats), 1_000);
              s.askStats = (stats) => {
                clearTimeout(timer);
                resolve(stats);
              };
              try {
                s.worker.post({ type: 'stats' } satisfies ToWorker);
              } catch {
                resolve(s.stats); // it is exiting; its exit is on the way
              }
            }),
        ),
    );
    return each.reduce((a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k as keyof WorkerStats] + b[k as keyof WorkerStats]])) as unknown as WorkerStats, NO_STATS);
  }

  /** Why a request would be refused now: 503 (loading, draining, no worker) or 429 (queue full); undefined if it would be taken. */
  refusal(): HttpError | undefined {
    if (this.state !== 'ready') return unavailable(this.state);
    if (!this.hasWorkers) return noWorkers();
    if (!this.hasRoom()) return httpError(429, 'rate_limit_error', 'rate_limit_exceeded', `the server is busy: ${this.running} requests running and ${this.queue.length} queued (the queue holds ${this.init.queue})`, { retryAfter: 1 });
    return undefined;
  }

  /** Queue a request; throws refusal() if there is one. Returns its cancel function. */
  submit(body: Record<string, unknown>, transfer: ArrayBuffer[], handlers: JobHandlers): () => void {
    const refused = this.refusal();
    if (refused) throw refused;
    const job: Job = { ...handlers, id: this.nextId++, body, transfer, settled: false };
    this.queue.push(job);
    this.dispatch();
    return () => this.cancel(job);
  }

  /** Refuse new requests, finish the accepted ones (running and queued), then stop the workers. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'draining';
    this.onChange();
    if (this.running + this.queue.length > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        setTimeout(resolve, timeoutMs).unref();
      });
    }
    await this.close();
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const job of [...this.queue, ...this.slots.flatMap((s) => [...s.jobs])]) this.fail(job, unavailable('closed').api);
    this.queue.length = 0;
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.worker.onExit(() => resolve());
            try {
              s.worker.post({ type: 'close' } satisfies ToWorker);
            } catch {
              // Already exiting.
            }
            setTimeout(() => s.worker.kill(), 5000).unref();
          }),
      ),
    );
    this.onChange();
  }

  private spawn(): Promise<void> {
    // No resourceLimits: Node 20 stops a worker at its heap limit only when the heap grows slowly; a
    // fast allocation past it (a large string split) aborts the whole process (docs/reliability.md).
    const { model, device, maxVideoFrames, maxImagePixels } = this.init;
    const worker = startWorker(workerFile(), { model, device, maxVideoFrames, maxImagePixels }, this.init.isolation);
    const slot: Slot = { worker, ready: false, jobs: new Set(), stats: NO_STATS };
    this.slots.push(slot);
    return new Promise<void>((resolve, reject) => {
      worker.onMessage((m: FromWorker) => {
        if (m.type === 'ready') {
          slot.ready = true;
          this.respawnFailures = 0;
          resolve();
          this.dispatch();
        } else if (m.type === 'load-error') reject(m.error.code ? new LlavaMiniError(m.error.code as ErrorCode, m.error.message) : new Error(m.error.message));
        else if (m.type === 'log') this.log(m.message);
        else if (m.type === 'fatal') this.failed(slot, m.error.message);
        else if (m.type === 'stats') {
          slot.stats = m.stats;
          slot.askStats?.(m.stats);
          slot.askStats = undefined;
        }
        else this.fromWorker(slot, m);
      });
      worker.onError((err) => {
        if (!slot.ready) reject(err);
        slot.crash = err.message;
        this.log(`worker crashed: ${err.message}`);
      });
      worker.onExit((how) => {
        this.slots.splice(this.slots.indexOf(slot), 1);
        for (const job of slot.jobs) this.fail(job, workerExited(slot, how));
        if (!slot.ready) {
          reject(new Error(`a worker exited while loading the model (${how})`));
          this.failQueuedIfNoWorkers();
        }
        // A worker that died while serving is replaced, so the pool keeps its size (once).
        else if (!slot.failed && (this.state === 'ready' || this.state === 'draining')) {
          this.onRestart();
          this.replace();
        }
        // Its failed jobs are done with: a drain waiting for them ends now, not at its timeout.
        this.dispatch();
      });
    });
  }

  /** A worker that reported an error outside any request: its requests fail now, a replacement starts, and it exits once idle. */
  private failed(slot: Slot, reason: string): void {
    if (!this.slots.includes(slot)) return; // its exit came first and has replaced it
    this.log(`worker crashed: ${reason}`);
    slot.crash = reason;
    slot.failed = true;
    slot.ready = false;
    for (const job of slot.jobs) this.fail(job, workerExited(slot, 'stopping'));
    if (this.state === 'ready' || this.state === 'draining') {
      this.onRestart();
      this.replace();
    }
    this.dispatch();
  }

  /**
   * Start a worker in place of one that died, trying again later while the replacement cannot load.
   * With no worker left (none loaded, none loading), queued requests fail with 503 at once instead of
   * waiting for a worker that may never come, and new ones are refused until one loads.
   */
  private replace(): void {
    const delay = RESPAWN_DELAYS_MS[Math.min(this.respawnFailures, RESPAWN_DELAYS_MS.length - 1)];
    const attempt = () => {
      if (this.state !== 'ready' && this.state !== 'draining') return;
      this.spawn().catch((e: Error) => {
        this.respawnFailures++;
        this.log(`replacing a worker failed: ${e.message}`);
        this.replace();
      });
    };
    if (delay === 0) attempt();
    else setTimeout(attempt, delay).unref();
  }

  private failQueuedIfNoWorkers(): void {
    if (this.hasWorkers) return;
    for (const job of this.queue.splice(0)) this.fail(job, noWorkers().api);
    this.dispatch();
  }

  private fromWorker(slot: Slot, m: Extract<FromWorker, { id: number }>): void {
    const job = [...slot.jobs].find((j) => j.id === m.id);
    if (!job) return;
    if (m.type === 'chunk') {
      if (!job.settled) job.onChunk(m.chunk);
      return;
    }
    slot.jobs.delete(job);
    if (m.type === 'error' && m.error.code === 'ABORTED' && job.settled && !slot.failed) this.onCancelled();
    if (m.type === 'done') {
      if (!job.settled) job.onDone(m.completion);
      job.settled = true;
    } else this.fail(job, fromLibraryError(m.error as SerializedError));
    this.dispatch();
  }

  private leastBusy(): Slot | undefined {
    return this.slots.filter((s) => this.free(s)).sort((a, b) => a.jobs.size - b.jobs.size)[0];
  }

  private fail(job: Job, error: ApiError): void {
    if (job.settled) return;
    job.settled = true;
    job.onError(error);
  }

  private cancel(job: Job): void {
    if (job.settled) return;
    job.settled = true;
    const i = this.queue.indexOf(job);
    if (i >= 0) {
      this.queue.splice(i, 1);
      this.dispatch();
    } else if (job.worker) {
      try {
        job.worker.worker.post({ type: 'cancel', id: job.id } satisfies ToWorker);
      } catch {
        // Its worker is gone; the worker's exit fails the job.
      }
    }
    // A running job keeps its worker until the worker reports it stopped (between two tokens).
  }

  /** Whether a worker takes another request now. */
  private free(slot: Slot): boolean {
    return slot.ready && slot.jobs.size < this.init.parallel;
  }

  private dispatch(): void {
    // The least busy worker first, so requests spread over the workers before they share one.
    for (let slot = this.leastBusy(); slot && this.queue.length; slot = this.leastBusy()) {
      const job = this.queue.shift() as Job;
      slot.jobs.add(job);
      job.worker = slot;
      job.onStart?.();
      try {
        slot.worker.post({ type: 'run', id: job.id, body: job.body } satisfies ToWorker, job.transfer);
      } catch (err) {
        // A body the structured clone refuses fails alone, and gives its slot back at once.
        slot.jobs.delete(job);
        this.fail(job, { status: 500, type: 'server_error', code: 'internal_error', param: null, message: `the request could not be handed to a worker: ${(err as Error).message}` });
      }
    }
    this.onChange();
    if (this.drained && this.running + this.queue.length === 0) this.drained();
  }
}

function workerExited(slot: Slot, otherwise: string): ApiError {
  return { status: 500, type: 'server_error', code: 'worker_exited', param: null, message: `the worker running this request stopped (${(slot.crash ?? otherwise).split('\n')[0].slice(0, 200)}); it is being replaced` };
}

function noWorkers() {
  return httpError(503, 'server_error', 'no_workers', 'every worker stopped and none could be started again yet (see the server log)', { retryAfter: 5 });
}

function unavailable(state: PoolState) {
  return state === 'loading'
    ? httpError(503, 'server_error', 'model_loading', 'the model is still loading', { retryAfter: 2 })
    : httpError(503, 'server_error', 'server_shutting_down', 'the server is shutting down and takes no new requests');
}
