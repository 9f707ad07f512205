import { type Tensor, tensor } from '@llava-mini/core';
import { LLAMA_IO } from '../io.js';
import { cacheOutputNames, KvCache, type NewRows, newRowFeeds, pastFeeds, totalLengthFeeds } from './cache.js';

/**
 * 'shared' mode (the float16 GPU targets): one host buffer per layer and kind is fed as
 * `past_key_values.*` and fetched as `present.*` at once, so GroupQueryAttention writes a run's new
 * rows in place at positions length .. length + n - 1. A decode step is a run of one row.
 *
 * Capacity doubles as the context grows (GroupQueryAttention reads only the held rows, so spare
 * rows cost memory, not time), up to the model's maxSequence.
 */
export class SharedCache extends KvCache {
  private tensors: Tensor[] | undefined;
  private capacity = 0;

  get bytes(): number {
    return this.bytesFor(this.capacity);
  }

  async extend(rows: NewRows, n: number): Promise<Float32Array> {
    const epoch = this.begin();
    this.reserve(this.filled + n);
    const buffers = this.tensors as Tensor[];
    const presents = Object.fromEntries(cacheOutputNames(this.decoder.layout.numLayers, 'present').map((name, i) => [name, buffers[i]]));
    const feeds = { ...newRowFeeds(rows, 1, this.decoder), ...pastFeeds(buffers), ...totalLengthFeeds(this.filled + n) };
    const out = await this.decoder.run(feeds, { [LLAMA_IO.logits]: tensor('float32', [1, this.decoder.vocabSize]), ...presents });
    this.landed(epoch, out);
    this.filled += n;
    return (out[LLAMA_IO.logits] as Tensor).data as Float32Array;
  }

  /** Rows past the length are never read (attention looks only below total_sequence_length): nothing to move. */
  truncate(length: number): void {
    this.filled = Math.max(0, Math.min(this.filled, length));
  }

  protected drop(): void {
    this.tensors = undefined;
    this.capacity = 0;
  }

  protected async hostRows(): Promise<[Tensor[] | undefined, number]> {
    return [this.tensors, this.capacity];
  }

  protected sibling(): SharedCache {
    return new SharedCache(this.decoder, this.pool);
  }

  protected adopt(tensors: Tensor[], capacity: number): void {
    [this.tensors, this.capacity] = [tensors, capacity];
  }

  /** Make room for `positions`, keeping the filled rows (a copy per doubling). */
  private reserve(positions: number): void {
    if (positions <= this.capacity && this.tensors) return;
    [this.tensors, this.capacity] = this.grow(this.tensors, this.capacity, positions, 2);
  }
}
