// Prometheus metrics (prom-client), in a registry of the server's own so that several servers in
// one process (tests) keep separate counts.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WorkerStats } from './protocol.js';

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'llava_mini_requests_total', help: 'Chat-completion requests by HTTP status and mode', labelNames: ['status', 'stream'], registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'llava_mini_queue_depth', help: 'Requests waiting for a worker', registers: [this.registry] });
  readonly running = new Gauge({ name: 'llava_mini_running_requests', help: 'Requests running in a worker', registers: [this.registry] });
  readonly workersReady = new Gauge({ name: 'llava_mini_workers_ready', help: 'Worker threads with a loaded model', registers: [this.registry] });
  readonly cancelled = new Counter({ name: 'llava_mini_generations_cancelled_total', help: 'Generations a worker stopped because their client went away', registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'llava_mini_prompt_tokens_total', help: 'Prompt positions run (text and vision tokens)', registers: [this.registry] });
  readonly generatedTokens = new Counter({ name: 'llava_mini_generated_tokens_total', help: 'Tokens generated (rate() of it is the aggregate tokens/s)', registers: [this.registry] });
  readonly decodeSpeed = new Histogram({
    name: 'llava_mini_decode_tokens_per_second',
    help: 'Decode speed of each request',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
    registers: [this.registry],
  });
  readonly ttft = new Histogram({
    name: 'llava_mini_time_to_first_token_seconds',
    help: 'From the request arriving until its first token (queueing included)',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'llava_mini_request_duration_seconds',
    help: 'From the request arriving until its last byte',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

  readonly workerRestarts = new Counter({ name: 'llava_mini_worker_restarts_total', help: 'Workers that stopped while serving (crashed, out of memory) and were replaced', registers: [this.registry] });

  /** The workers' caches, asked of them at each scrape (a freed conversation shows at the next one). */
  constructor(workerStats: () => Promise<WorkerStats>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'llava_mini_' });
    let pending: Promise<WorkerStats> | undefined;
    // One ask of the workers per scrape, whichever gauge collects first.
    const ask = () => (pending ??= workerStats().finally(() => setImmediate(() => (pending = undefined))));
    const gauge = (name: string, help: string, pick: (s: WorkerStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          this.set(pick(await ask()));
        },
      });
    gauge('llava_mini_kv_cache_bytes', "Bytes of the KV caches in the workers: running requests' conversations, and what is kept across requests (a video's opening)", (s) => s.kvBytes);
    gauge('llava_mini_picture_cache_bytes', "Bytes the workers' picture caches hold (bounded; pictures' prefixes kept across requests)", (s) => s.pictureBytes);
    gauge('llava_mini_picture_cache_entries', "Pictures the workers' picture caches hold", (s) => s.pictureEntries);
    gauge('llava_mini_worker_heap_bytes', "JavaScript heap the workers use (the model's weights and caches are native memory)", (s) => s.heapBytes);
    gauge('llava_mini_worker_requests', 'Requests the workers themselves report running (a cancelled one counts until its worker has stopped it)', (s) => s.running);
  }
}
