import cliProgress from 'cli-progress';
import type { ProgressCallback, ProgressEvent } from '@llava-mini/core';

/**
 * Draws the library's progress events as one bar per task on stderr (so `--json` output on stdout
 * stays clean). Off a terminal it prints nothing: CI logs and pipes get no control characters.
 */
export class ProgressView {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  protected readonly multi?: cliProgress.MultiBar;

  constructor(enabled = process.stderr.isTTY === true, format = ' {task} |{bar}| {percentage}% {value}/{total} {unit} {item}') {
    if (enabled) {
      this.multi = new cliProgress.MultiBar({ stream: process.stderr, format, hideCursor: true, clearOnComplete: true, barsize: 30 }, cliProgress.Presets.shades_classic);
    }
  }

  readonly callback: ProgressCallback = (e: ProgressEvent) => {
    this.draw(e, { task: e.task.padEnd(12), item: e.item ?? '', unit: e.unit ?? '' });
  };

  /** Move the task's bar (made on its first event) to the event's count, with the format's fields. */
  protected draw(e: ProgressEvent, payload: Record<string, string>): void {
    if (!this.multi) return;
    let bar = this.bars.get(e.task);
    if (!bar) {
      bar = this.multi.create(e.total ?? 0, e.done, payload);
      this.bars.set(e.task, bar);
    }
    if (e.total !== undefined) bar.setTotal(e.total);
    bar.update(e.done, payload);
  }

  stop(): void {
    this.multi?.stop();
  }
}
