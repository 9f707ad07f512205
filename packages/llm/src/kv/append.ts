import { type DeviceTensor, isDeviceTensor, type Tensor, tensor } from '@llava-mini/core';
import { LLAMA_IO } from '../io.js';
import { cacheOutputNames, KvCache, type NewRows, newRowFeeds, pastFeeds, totalLengthFeeds } from './cache.js';

/**
 * 'append' mode, for runtimes whose GroupQueryAttention returns past rows + new rows as its
 * present (onnxruntime-web's WebGPU kernels): the cache holds exactly the filled rows, and each
 * run's presents become the next run's past. Where the device has memory of its own the presents
 * stay there between runs, never crossing to the host; a decode step is a run of one row.
 *
 * The rows live in one of two places: host tensors, or device tensors (`onDevice`). Cutting
 * device-resident rows (truncate) means reading them back, which is asynchronous: the cut is noted
 * and done at the start of the next run.
 */
export class AppendCache extends KvCache {
  private tensors: Tensor[] | undefined;
  private onDevice: DeviceTensor[] | undefined;
  /** A pending rollback of device-resident rows: keep `keep` of the `rows` they hold. */
  private cut: { keep: number; rows: number } | undefined;
  /** Rows the buffers hold: the filled ones, or more while a cut is pending. */
  private rows = 0;

  get bytes(): number {
    return this.bytesFor(this.rows);
  }

  async extend(rows: NewRows, n: number): Promise<Float32Array> {
    await this.applyCut();
    const epoch = this.begin();
    this.claim(this.bytesFor(this.filled + n) - this.bytes);
    const past = this.onDevice ?? (this.tensors ??= this.empty(0));
    const names = cacheOutputNames(this.decoder.layout.numLayers, 'present');
    const feeds = { ...newRowFeeds(rows, 1, this.decoder), ...pastFeeds<Tensor | DeviceTensor>(past), ...totalLengthFeeds(this.filled + n) };
    const out = await this.decoder.run(feeds, [LLAMA_IO.logits, ...names], { keepOnDevice: true });
    this.landed(epoch, out);
    const total = this.filled + n;
    const next = names.map((name) => out[name]);
    if (next.some((t) => !t || t.dims[2] !== total)) throw new Error(`the LLM returned present tensors that do not hold ${total} positions`);
    // The run has read the previous presents as its past: their GPU memory goes now.
    this.disposeDevice();
    if (next.every((t) => isDeviceTensor(t))) {
      this.onDevice = next as DeviceTensor[];
      this.tensors = undefined;
    } else {
      this.tensors = next as Tensor[];
    }
    this.rows = total;
    this.filled = total;
    return (out[LLAMA_IO.logits] as Tensor).data as Float32Array;
  }

  truncate(length: number): void {
    const keep = Math.max(0, Math.min(this.filled, length));
    if (this.onDevice && keep < this.filled) {
      this.cut = { keep, rows: this.cut?.rows ?? this.rows };
    } else if (this.tensors && keep < this.filled) {
      // The buffers hold exactly the filled rows: keep each head's first `keep`.
      this.tensors = this.keepFirst(this.tensors, this.filled, keep);
      this.rows = keep;
    }
    this.filled = keep;
  }

  protected drop(): void {
    this.disposeDevice();
    this.tensors = undefined;
    this.rows = 0;
  }

  /** Rows on the device are read back (a pending cut applied first); they stay there for this cache's own next run. */
  protected async hostRows(): Promise<[Tensor[] | undefined, number]> {
    await this.applyCut();
    const device = this.onDevice;
    if (!device) return [this.tensors, this.rows];
    const { numKvHeads, headDim } = this.decoder.layout;
    const rows = this.rows;
    return [await Promise.all(device.map(async (t) => tensor(t.dtype, [1, numKvHeads, rows, headDim], await t.download()))), rows];
  }

  protected sibling(): AppendCache {
    return new AppendCache(this.decoder, this.pool);
  }

  protected adopt(tensors: Tensor[], rows: number): void {
    [this.tensors, this.rows] = [tensors, rows];
  }

  /** Finish a rollback of device-resident rows: the kept rows come to the host, to be uploaded by the next run. */
  private async applyCut(): Promise<void> {
    const cut = this.cut;
    const device = this.onDevice;
    if (!cut || !device) return;
    const { numKvHeads, headDim } = this.decoder.layout;
    const host = await Promise.all(device.map(async (t) => tensor(t.dtype, [1, numKvHeads, cut.rows, headDim], await t.download())));
    if (this.onDevice !== device) return; // released meanwhile
    this.disposeDevice();
    this.tensors = this.keepFirst(host, cut.rows, cut.keep);
    this.rows = cut.keep;
  }

  /** New buffers with each head's first `keep` of the `rows` rows of `from`. */
  private keepFirst(from: Tensor[], rows: number, keep: number): Tensor[] {
    const kept = this.empty(keep);
    kept.forEach((t, i) => this.copyRows(from[i], rows, 0, t, keep, 0, keep));
    return kept;
  }

  private disposeDevice(): void {
    for (const t of this.onDevice ?? []) t.dispose();
    this.onDevice = undefined;
    this.cut = undefined;
  }
}
