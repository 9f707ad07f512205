import type { ProgressEvent } from '@llava-mini/core';
import { ProgressView } from '../progress.js';

const seconds = (s: number): string => {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
};

/**
 * Draws a batch's progress events on stderr: a bar with jobs/s and ETA on a terminal; off one
 * (logs, nohup) a plain line every `everyMs`, so a long run still shows where it is. Rate and ETA
 * count only this run's jobs, not those a resumed run skipped.
 */
export class BatchProgressView extends ProgressView {
  private readonly started = performance.now();
  private first?: { done: number; at: number };
  private lastLine = 0;
  failed = 0;

  constructor(
    tty = process.stderr.isTTY === true,
    private readonly everyMs = 10_000,
  ) {
    super(tty, ' {task} |{bar}| {value}/{total} {unit} {rate}');
  }

  /** "12.5 jobs/s, ETA 3 min 5 s, 2 failed" for the batch task. */
  private rate(e: ProgressEvent): string {
    this.first ??= { done: e.done, at: performance.now() };
    const elapsed = (performance.now() - this.first.at) / 1000;
    const ran = e.done - this.first.done;
    const perSecond = ran / elapsed;
    const eta = e.total === undefined ? NaN : (e.total - e.done) / perSecond;
    const parts = [ran > 0 ? `${perSecond.toFixed(perSecond < 10 ? 2 : 1)} jobs/s, ETA ${seconds(eta)}` : 'starting'];
    if (this.failed) parts.push(`${this.failed} failed`);
    return parts.join(', ');
  }

  override readonly callback = (e: ProgressEvent): void => {
    const rate = e.task === 'batch' || e.task === 'collect' ? this.rate(e) : '';
    if (!this.multi) {
      const t = performance.now();
      const last = e.total !== undefined && e.done >= e.total;
      if (rate && (t - this.lastLine >= this.everyMs || last)) {
        this.lastLine = t;
        process.stderr.write(`${e.task}: ${e.done}/${e.total ?? '?'} ${e.unit ?? ''}, ${rate}\n`);
      }
      return;
    }
    this.draw(e, { task: e.task.padEnd(8), unit: e.unit ?? '', rate });
  };

  get elapsedSeconds(): number {
    return (performance.now() - this.started) / 1000;
  }
}

export { seconds as formatSeconds };
