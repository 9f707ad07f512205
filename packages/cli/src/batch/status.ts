import type { QueueStatus } from '@llava-mini/batch';
import { formatSeconds } from './progress.js';

/** `llava-mini batch --queue ... --status`: queue depth, then one line per live worker. */
export function printStatus(s: QueueStatus, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const perMinute = s.completedPerMinute.slice(0, 5);
  const recent = perMinute.length ? perMinute.reduce((a, b) => a + b, 0) / perMinute.length : 0;
  const lines = [
    `queue ${s.name}: ${s.enqueued} enqueued, ${s.collected} collected`,
    `  waiting ${s.waiting}, active ${s.active}, delayed (retry backoff) ${s.delayed}, finished not yet collected ${s.completed} answered + ${s.failed} failed`,
    `  throughput ${recent.toFixed(1)} jobs/min (last ${perMinute.length} min)`,
    `workers: ${s.workers.length}`,
  ];
  const now = Date.now();
  for (const w of s.workers) {
    const up = (w.lastSeen - w.startedAt) / 1000;
    lines.push(
      `  ${w.name.padEnd(24)} concurrency ${w.concurrency}, ${w.done} done, ${w.failed} failed attempts, ${w.lastMinute} in the last minute` +
        ` (${up > 0 ? (w.done / up).toFixed(2) : '0.00'} jobs/s since start ${formatSeconds(up)} ago; seen ${formatSeconds((now - w.lastSeen) / 1000)} ago)`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
