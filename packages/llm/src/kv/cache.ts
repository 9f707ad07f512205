import { type DeviceTensor, DisposedError, type DType, type Fetches, isDeviceTensor, type RunOptions, type Tensor, tensor } from '@llava-mini/core';
import { LLAMA_IO } from '../io.js';
import type { Evictable, KvPool } from './pool.js';

/**
 * How the decoder graph and a cache meet; each has its own strategy file beside this one:
 * - 'rows' (rows.ts): the graph reads the cache and returns only the new rows, which the cache
 *   writes in (nothing of the size of the cache crosses the JS boundary per run); decode steps of
 *   sequences stepping together run as one batch;
 * - 'shared' (shared.ts): GroupQueryAttention writes the new rows into a buffer passed as both past
 *   and present;
 * - 'append' (append.ts): runtimes whose GroupQueryAttention returns past rows + new rows instead
 *   (onnxruntime-web's WebGPU kernels): each run's presents become the next run's past.
 */
export type KvMode = 'rows' | 'shared' | 'append';

/** What a cache's buffers look like; read from the decoder session's `past_key_values.*` inputs. */
export interface KvLayout {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  dtype: Extract<DType, 'float32' | 'float16'>;
  mode: KvMode;
}

/** What a cache needs of the model: the decoder's shape and one run of it. */
export interface Decoder {
  readonly layout: KvLayout;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly maxSequence: number;
  run(feeds: Record<string, Tensor | DeviceTensor>, fetches: Fetches, options?: RunOptions): Promise<Record<string, Tensor | DeviceTensor>>;
}

/** The new rows of one run: embeddings [1, n, H], or n token ids the decoder looks up itself. */
export type NewRows = Tensor | BigInt64Array;

/** One cache mode for one decoder: it opens the sequences' caches and owns what they share. */
export interface KvStrategy {
  open(pool: KvPool): KvCache;
  /** Bytes the strategy holds beyond the sequences' own caches (the rows strategy's decode arena). */
  readonly sharedBytes: number;
  /** Decode runs, the sequence steps they carried and the moves of sequences into the batch, where steps are batched. */
  readonly batchStats: BatchStats | undefined;
}

/** What batched decoding did: `steps / runs` is the mean batch; each join copied one sequence's rows into the arena. */
export interface BatchStats {
  runs: number;
  steps: number;
  joins: number;
}

/** Capacity grows in steps of this many positions. */
export const GROWTH = 256;

/**
 * `rows` rows of each of `heads` heads, from position `srcAt` of `src` (laid out [heads, srcCap,
 * headDim]) to position `dstAt` of `dst` ([heads, dstCap, headDim]): every move of KV rows between
 * run outputs, caches and the decode arena.
 */
export function copyHeadRows(heads: number, headDim: number, rows: number, src: Float32Array, srcCap: number, srcAt: number, dst: Float32Array, dstCap: number, dstAt: number): void {
  for (let h = 0; h < heads; h++) {
    const from = (h * srcCap + srcAt) * headDim;
    dst.set(src.subarray(from, from + rows * headDim), (h * dstCap + dstAt) * headDim);
  }
}

/** inputs_embeds and input_ids for new rows given as embeddings [B, n, H] or ids (B rows of n): the other one is empty. */
export function newRowFeeds(rows: NewRows, batch: number, decoder: Decoder): Record<string, Tensor> {
  if (rows instanceof BigInt64Array) {
    return { [LLAMA_IO.inputsEmbeds]: tensor(decoder.layout.dtype, [batch, 0, decoder.hiddenSize]), [LLAMA_IO.inputIds]: tensor('int64', [batch, rows.length / batch], rows) };
  }
  return { [LLAMA_IO.inputsEmbeds]: rows, [LLAMA_IO.inputIds]: tensor('int64', [batch, 0]) };
}

/**
 * The KV cache of one sequence: per layer one key and one value buffer [1, kvHeads, capacity,
 * headDim], in the layout of its strategy. `length` counts the positions filled. The pool may take
 * the buffers of an idle cache (evict); a cache is held while a run or a generation is on it.
 */
export abstract class KvCache implements Evictable {
  protected filled = 0;
  /** Counts releases: a run that began before one finds its rows have nowhere to go. */
  private epoch = 0;
  private holds = 0;
  private evicted = 0;
  private disposed = false;
  private readonly ref: WeakRef<Evictable>;
  /** A memo's cache: the pool evicts it before any other (Sequence.makeExpendable). */
  expendable = false;

  constructor(
    protected readonly decoder: Decoder,
    protected readonly pool: KvPool,
  ) {
    this.ref = pool.add(this);
  }

  /** Positions in the cache. */
  get length(): number {
    return this.filled;
  }

  /** Positions left. */
  get free(): number {
    return this.decoder.maxSequence - this.filled;
  }

  /** Times the pool took this cache's buffers while it was idle. */
  get evictions(): number {
    return this.evicted;
  }

  get idle(): boolean {
    return this.holds === 0;
  }

  /** Bytes the buffers take now (they grow with the context). */
  abstract get bytes(): number;

  /** One decoder run that appends `n` rows; returns the logits [vocab] after the last. */
  abstract extend(rows: NewRows, n: number): Promise<Float32Array>;

  /** Append one generated token and return the next logits (a strategy may batch it with other sequences' steps). */
  step(id: bigint): Promise<Float32Array> {
    return this.extend(BigInt64Array.of(id), 1);
  }

  /** Forget every position from `length` on (a conversation rolled back). */
  abstract truncate(length: number): void;

  /** Drop the buffers now: the cache is empty, and allocates again on its next run. */
  release(): void {
    this.epoch++;
    this.drop();
    this.filled = 0;
  }

  /** Release and leave the pool for good. */
  dispose(): void {
    this.disposed = true;
    this.release();
    this.pool.remove(this.ref);
  }

  evict(): void {
    this.release();
    this.evicted++;
  }

  /** Keep the pool off this cache while a run or a generation is on it; returns the release (safe to call twice). */
  hold(): () => void {
    this.holds++;
    let held = true;
    return () => {
      if (held) this.holds--;
      held = false;
    };
  }

  /**
   * Nothing will step on this cache for a while (its generation ended): a strategy that keeps rows
   * elsewhere while sequences decode together brings them home (the rows strategy's decode arena).
   */
  park(): void {}

  /**
   * A new cache of the same strategy in the same pool, holding a copy of this one's positions (its
   * bytes claimed from the pool, as a growth would); from then on the two are independent. Several
   * answers continue one prompt this way, without running it again. No run may be on this cache meanwhile.
   */
  async fork(): Promise<KvCache> {
    const epoch = this.begin();
    const [rows, capacity] = await this.hostRows();
    if (this.disposed || epoch !== this.epoch) throw new DisposedError('the KV cache (while it was forked)');
    const copy = this.sibling();
    if (rows) {
      copy.claim(copy.bytesFor(capacity));
      copy.adopt(rows.map((t) => tensor(t.dtype, t.dims, t.data.slice())), capacity);
    }
    copy.filled = this.filled;
    return copy;
  }

  /** Free whatever the buffers hold (the strategy's own storage). */
  protected abstract drop(): void;

  /** The filled rows as host buffers of `capacity` positions (brought home first if they live elsewhere); none when empty. Not to be written. */
  protected abstract hostRows(): Promise<[Tensor[] | undefined, number]>;

  /** A new, empty cache of this strategy, in the same pool. */
  protected abstract sibling(): KvCache;

  /** Take `tensors`, buffers of `capacity` positions, as this cache's own (a fork's copy). */
  protected abstract adopt(tensors: Tensor[], capacity: number): void;

  /** Before a run: the cache must be live; it becomes the pool's most recently used. Returns the epoch to hand to landed(). */
  protected begin(): number {
    if (this.disposed) throw new DisposedError('the KV cache');
    this.pool.touch(this.ref);
    return this.epoch;
  }

  /** After a run begun at `epoch`: if the cache was released meanwhile, its outputs are dropped (GPU memory too) and the run fails. */
  protected landed(epoch: number, outputs: Record<string, Tensor | DeviceTensor>): void {
    if (!this.disposed && epoch === this.epoch) return;
    for (const t of Object.values(outputs)) if (isDeviceTensor(t)) t.dispose();
    throw new DisposedError('the KV cache (during a run)');
  }

  /** Make room in the pool for `extra` more bytes (evicting idle caches if it must). */
  protected claim(extra: number): void {
    if (extra > 0) this.pool.reserve(this, extra);
  }

  protected bytesFor(capacity: number): number {
    const { numLayers, numKvHeads, headDim, dtype } = this.decoder.layout;
    return 2 * numLayers * numKvHeads * capacity * headDim * (dtype === 'float32' ? 4 : 2);
  }

  /**
   * Host buffers with room for `positions`, grown from `capacity` by at least `factor` in whole GROWTH
   * steps (up to maxSequence), holding the filled rows of `old`: the one copy a growth costs.
   */
  protected grow(old: Tensor[] | undefined, capacity: number, positions: number, factor: number): [Tensor[], number] {
    const next = Math.min(this.decoder.maxSequence, Math.ceil(Math.max(positions, capacity * factor) / GROWTH) * GROWTH);
    this.claim(this.bytesFor(next) - this.bytesFor(capacity));
    const grown = this.empty(next);
    // [1, kvHeads, capacity, headDim]: each head's rows move to the head's new, longer span.
    if (old) grown.forEach((t, i) => this.copyRows(old[i], capacity, 0, t, next, 0, this.filled));
    return [grown, next];
  }

  /** Zero-filled buffers of `capacity` positions, [layer0 key, layer0 value, layer1 key, ...]. */
  protected empty(capacity: number): Tensor[] {
    const { numLayers, numKvHeads, headDim, dtype } = this.decoder.layout;
    return Array.from({ length: 2 * numLayers }, () => tensor(dtype, [1, numKvHeads, capacity, headDim]));
  }

  /** Each head's `rows` rows of `from` (capacity `fromCap`) at `fromAt` into `to` (capacity `toCap`) at `toAt`. */
  protected copyRows(from: Tensor, fromCap: number, fromAt: number, to: Tensor, toCap: number, toAt: number, rows: number): void {
    const { numKvHeads, headDim } = this.decoder.layout;
    copyHeadRows(numKvHeads, headDim, rows, from.data as Float32Array, fromCap, fromAt, to.data as Float32Array, toCap, toAt);
  }
}

/** past_key_values.* feeds of tensors in cache order ([layer0 key, layer0 value, ...]). */
export function pastFeeds<T>(t: readonly T[]): Record<string, T> {
  const past: Record<string, T> = {};
  for (let i = 0; i < t.length; i++) past[i % 2 ? LLAMA_IO.pastValue(i >> 1) : LLAMA_IO.pastKey(i >> 1)] = t[i];
  return past;
}

/** The names of a run's cache outputs in cache order: the new rows ('new') or the whole presents ('present'). */
export function cacheOutputNames(numLayers: number, kind: 'new' | 'present'): string[] {
  return Array.from({ length: 2 * numLayers }, (_, i) => {
    const l = i >> 1;
    if (kind === 'new') return i % 2 ? LLAMA_IO.newValue(l) : LLAMA_IO.newKey(l);
    return i % 2 ? LLAMA_IO.presentValue(l) : LLAMA_IO.presentKey(l);
  });
}

/** What GroupQueryAttention needs to know of where the new rows go: `total` positions after the run. */
export function totalLengthFeeds(total: number): Record<string, Tensor> {
  return { [LLAMA_IO.seqlensK]: tensor('int32', [1], Int32Array.of(total - 1)), [LLAMA_IO.totalSequenceLength]: tensor('int32', [], Int32Array.of(total)) };
}
