import cliProgress from 'cli-progress';
import type { ProgressCallback, ProgressEvent } from '@llava-mini/core';

const BYTES_FORMAT = ' {task} |{bar}| {percentage}% {got}/{size} {rate} ETA {eta_formatted} {item}';

const bytes = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

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
    const payload = { task: e.task.padEnd(12), item: e.item ?? '', unit: e.unit ?? '' };
    this.draw(e, e.unit === 'bytes' ? { ...payload, ...this.byteFields(e) } : payload);
  };

  private readonly downloadStart = new Map<string, number>();

  /** A download's bar: sizes in MB or GB and the rate since its first event (ETA is cli-progress's). */
  private byteFields(e: ProgressEvent): Record<string, string> {
    const start = this.downloadStart.get(e.task) ?? performance.now();
    this.downloadStart.set(e.task, start);
    const seconds = (performance.now() - start) / 1000;
    return { got: bytes(e.done), size: bytes(e.total ?? 0), rate: seconds > 0.5 ? `${bytes(e.done / seconds)}/s` : '' };
  }

  /** Move the task's bar (made on its first event) to the event's count, with the format's fields. */
  protected draw(e: ProgressEvent, payload: Record<string, string>): void {
    if (!this.multi) return;
    let bar = this.bars.get(e.task);
    if (!bar) {
      bar = this.multi.create(e.total ?? 0, e.done, payload, e.unit === 'bytes' ? { format: BYTES_FORMAT } : {});
      this.bars.set(e.task, bar);
    }
    if (e.total !== undefined) bar.setTotal(e.total);
    bar.update(e.done, payload);
  }

  stop(): void {
    this.multi?.stop();
  }
}
