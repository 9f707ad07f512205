import { type DeviceTensor, DisposedError, type DType, isDeviceTensor, KvCacheFullError, type Tensor, tensor } from '@llava-mini/core';
import { LLAMA_IO } from './io.js';

/** Capacity grows in steps of this many positions. */
const GROWTH = 256;

/**
 * @internal `rows` rows of each of `heads` heads, from position `srcAt` of `src` (laid out
 * [heads, srcCap, headDim]) to position `dstAt` of `dst` ([heads, dstCap, headDim]): every move of
 * KV rows between run outputs, caches and the decode arena.
 */
export function copyHeadRows(heads: number, headDim: number, rows: number, src: Float32Array, srcCap: number, srcAt: number, dst: Float32Array, dstCap: number, dstAt: number): void {
  for (let h = 0; h < heads; h++) {
    const from = (h * srcCap + srcAt) * headDim;
    dst.set(src.subarray(from, from + rows * headDim), (h * dstCap + dstAt) * headDim);
  }
}

/**
 * How the decoder graph and the cache meet:
 * - 'rows': the graph reads the cache and returns only the new rows, which the cache writes in
 *   (nothing of the size of the cache crosses the JS boundary per run);
 * - 'shared': GroupQueryAttention writes the new rows into a buffer passed as both past and present;
 * - 'append': runtimes whose GroupQueryAttention returns past rows + new rows instead
 *   (onnxruntime-web's WebGPU kernels): the cache holds exactly the filled rows and each run's
 *   present outputs become the next run's past.
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

/** Feeds and fetches of one run on a cache. */
export interface KvRun {
  past: Record<string, Tensor | DeviceTensor>;
  /** Preallocated present outputs ('shared'), or the names of the outputs advance() takes. */
  fetches: Record<string, Tensor> | string[];
}

/**
 * The KV cache of one sequence: per layer one key and one value buffer [1, kvHeads, capacity,
 * headDim], which the graph reads (and, in 'shared' mode, writes in place); see KvMode. `length`
 * counts the positions filled.
 *
 * The capacity follows the length (up to maxSequence) instead of starting at maxSequence: a
 * conversation's bytes stay in proportion to its context. In 'rows' mode attention reads every
 * capacity row (the unheld ones masked), so capacity grows by an eighth (at least GROWTH rows) and
 * the rows read stay within 1/8 of the length; growing copies the cache once per 1/8 of growth.
 * 'shared' mode doubles it (GroupQueryAttention reads only the held rows).
 */
export class KvCache {
  private tensors: Tensor[] | undefined; // [layer0 key, layer0 value, layer1 key, ...]
  /**
   * 'append' mode where the runtime keeps the presents in GPU memory: the cache's rows, in the same
   * order, never downloaded between runs (`tensors` is then unset).
   */
  private onDevice: DeviceTensor[] | undefined;
  /** A rollback of device-resident rows, done on the host at the next settle(): keep this many of `rows`. */
  private cut: { keep: number; rows: number } | undefined;
  private capacity = 0;
  private filled = 0;
  /** Generations running on this cache; a held cache is never evicted. */
  holds = 0;
  /** Times the pool evicted this cache (its owner recomputes what it held). */
  evictions = 0;
  private disposed = false;
  /** Counts release()s: a run that began before one finds its rows have nowhere to go. */
  epoch = 0;
  private readonly ref: WeakRef<KvCache>;

  constructor(
    readonly layout: KvLayout,
    readonly maxSequence: number,
    private readonly pool: KvPool,
  ) {
    this.ref = pool.add(this);
  }

  /** Positions in the cache. */
  get length(): number {
    return this.filled;
  }

  /** Positions left. */
  get free(): number {
    return this.maxSequence - this.filled;
  }

  /** Bytes the buffers take now (they grow with the context). */
  get bytes(): number {
    return this.bytesFor(this.capacity);
  }

  /** Feeds and fetches of a run that adds `n` positions; hand the run's outputs to advance(). */
  buffers(n: number): KvRun {
    if (this.disposed) throw new DisposedError('the KV cache');
    const { mode, numLayers } = this.layout;
    if (mode === 'append') {
      if (this.cut) throw new Error('settle() the KV cache after a rollback before its next run');
      this.pool.reserve(this, this.bytesFor(this.filled + n) - this.bytes);
      this.pool.touch(this.ref);
      if (this.onDevice) return { past: this.feeds(this.onDevice), fetches: this.outputNames() };
      this.tensors ??= this.empty(0);
    } else {
      this.reserve(this.filled + n);
      this.pool.touch(this.ref);
    }
    const t = this.tensors as Tensor[];
    const past: Record<string, Tensor> = {};
    const present: Record<string, Tensor> = {};
    for (let l = 0; l < numLayers; l++) {
      past[LLAMA_IO.pastKey(l)] = present[LLAMA_IO.presentKey(l)] = t[2 * l];
      past[LLAMA_IO.pastValue(l)] = present[LLAMA_IO.presentValue(l)] = t[2 * l + 1];
    }
    if (mode === 'shared') return { past, fetches: present };
    return { past, fetches: this.outputNames() };
  }

  /** past_key_values.* feeds of tensors in cache order. */
  private feeds(t: readonly (Tensor | DeviceTensor)[]): Record<string, Tensor | DeviceTensor> {
    const past: Record<string, Tensor | DeviceTensor> = {};
    for (let l = 0; l < this.layout.numLayers; l++) {
      past[LLAMA_IO.pastKey(l)] = t[2 * l];
      past[LLAMA_IO.pastValue(l)] = t[2 * l + 1];
    }
    return past;
  }

  /** Positions the buffers hold room for. */
  get rows(): number {
    return this.capacity;
  }

  /** Record that `n` more positions were written; `outputs`: the run's outputs (new rows, or the presents when appending). */
  advance(n: number, outputs?: Record<string, Tensor | DeviceTensor>, epoch = this.epoch): void {
    const { mode } = this.layout;
    if (this.disposed || epoch !== this.epoch) {
      // Released or disposed while the run was in flight: its outputs are dropped (GPU memory too).
      for (const t of Object.values(outputs ?? {})) if (isDeviceTensor(t)) t.dispose();
      throw new DisposedError('the KV cache (during a run)');
    }
    if (mode === 'append') {
      const next = this.outputNames().map((name) => outputs?.[name]);
      const rows = this.filled + n;
      if (next.some((t) => !t || t.dims[2] !== rows)) throw new Error(`the LLM returned present tensors that do not hold ${rows} positions`);
      // The run has read the previous presents as its past: their GPU memory goes now.
      this.disposeDevice();
      if (next.every((t) => t && isDeviceTensor(t))) {
        this.onDevice = next as DeviceTensor[];
        this.tensors = undefined;
      } else {
        this.tensors = next as Tensor[];
      }
      this.capacity = rows;
    } else if (mode === 'rows') {
      const names = this.outputNames();
      (this.tensors as Tensor[]).forEach((t, i) => {
        const rows = outputs?.[names[i]];
        if (!rows || isDeviceTensor(rows) || rows.dims[2] !== n || rows.dims[0] !== 1) throw new Error(`the LLM returned ${names[i]} that does not hold ${n} new rows on the host`);
        this.copyRows(rows, n, 0, t, this.capacity, this.filled, n);
      });
    }
    this.filled += n;
  }

  /**
   * @internal The held rows, into the arena slot views `slot(i)` ([kvHeads, cap, headDim] for
   * tensor i = 2 * layer + kind) when the sequence moves into a DecodeBatch.
   */
  copyOut(slot: (i: number) => Float32Array, cap: number): void {
    const { numKvHeads, headDim } = this.layout;
    (this.tensors ?? []).forEach((t, i) => copyHeadRows(numKvHeads, headDim, this.filled, t.data as Float32Array, this.capacity, 0, slot(i), cap, 0));
  }

  /** @internal `n` positions were written in a DecodeBatch's arena (this cache's own buffers hold the rows before it moved in). */
  advanceInArena(n: number): void {
    this.filled += n;
  }

  /** @internal Moving out of the arena: rows from..from+n-1 of the slot (capacity `cap`) come back into this cache's buffers. */
  restore(from: number, n: number, slot: (i: number) => Float32Array, cap: number): void {
    const length = this.filled;
    this.filled = from;
    this.reserve(from + n);
    const { numKvHeads, headDim } = this.layout;
    (this.tensors as Tensor[]).forEach((t, i) => copyHeadRows(numKvHeads, headDim, n, slot(i), cap, from, t.data as Float32Array, this.capacity, from));
    this.filled = length;
  }

  /** [layer0 key, layer0 value, ...] outputs: the new rows ('rows') or the presents ('append'). */
  private outputNames(): string[] {
    const rows = this.layout.mode === 'rows';
    return Array.from({ length: 2 * this.layout.numLayers }, (_, i) => {
      const l = i >> 1;
      if (rows) return i % 2 ? LLAMA_IO.newValue(l) : LLAMA_IO.newKey(l);
      return i % 2 ? LLAMA_IO.presentValue(l) : LLAMA_IO.presentKey(l);
    });
  }

  /** Zero-filled buffers of `capacity` positions. */
  private empty(capacity: number): Tensor[] {
    const { numLayers, numKvHeads, headDim, dtype } = this.layout;
    return Array.from({ length: 2 * numLayers }, () => tensor(dtype, [1, numKvHeads, capacity, headDim]));
  }

  /**
   * Forget everything after the first `length` positions (a conversation rolled back). Rows past
   * the length are never read: attention only looks at positions < total_sequence_length.
   */
  truncate(length: number): void {
    const keep = Math.max(0, Math.min(this.filled, length));
    if (this.onDevice && keep < this.filled) {
      // Cutting GPU-resident rows means reading them back: settle() does it before the next run.
      this.cut = { keep, rows: this.cut?.rows ?? this.capacity };
    } else if (this.layout.mode === 'append' && this.tensors && keep < this.filled) {
      // Buffers hold exactly the filled rows: keep each head's first `keep`.
      const old = this.tensors;
      this.tensors = this.empty(keep);
      this.tensors.forEach((t, i) => this.copyRows(old[i], this.filled, 0, t, keep, 0, keep));
      this.capacity = keep;
    }
    this.filled = keep;
  }

  /** Each head's `rows` rows of `from` (capacity `fromCap`) at `fromAt` into `to` (capacity `toCap`) at `toAt`; `rows` defaults to the first of `from`. */
  private copyRows(from: Tensor, fromCap: number, fromAt: number, to: Tensor, toCap: number, toAt: number, rows: number): void {
    copyHeadRows(this.layout.numKvHeads, this.layout.headDim, rows, from.data as Float32Array, fromCap, fromAt, to.data as Float32Array, toCap, toAt);
  }

  /** Finish a rollback of GPU-resident rows (see truncate): the kept rows come to the host, to be uploaded by the next run. */
  async settle(): Promise<void> {
    const cut = this.cut;
    const device = this.onDevice;
    if (!cut || !device) return;
    const host = await Promise.all(device.map(async (t) => tensor(t.dtype, [1, this.layout.numKvHeads, cut.rows, this.layout.headDim], await t.download())));
    if (this.onDevice !== device) return; // released meanwhile
    this.disposeDevice();
    this.tensors = this.empty(cut.keep);
    this.tensors.forEach((t, i) => this.copyRows(host[i], cut.rows, 0, t, cut.keep, 0, cut.keep));
    this.capacity = cut.keep;
  }

  private disposeDevice(): void {
    for (const t of this.onDevice ?? []) t.dispose();
    this.onDevice = undefined;
    this.cut = undefined;
  }

  /** Drop the buffers now (they are allocated again on the next run). */
  release(): void {
    this.epoch++;
    this.disposeDevice();
    this.tensors = undefined;
    this.capacity = 0;
    this.filled = 0;
  }

  /** Release and leave the pool for good. */
  dispose(): void {
    this.disposed = true;
    this.release();
    this.pool.remove(this.ref);
  }

  /** @internal the pool takes the buffers of an idle cache. */
  evict(): void {
    this.release();
    this.evictions++;
  }

  private bytesFor(capacity: number): number {
    const { numLayers, numKvHeads, headDim, dtype } = this.layout;
    return 2 * numLayers * numKvHeads * capacity * headDim * (dtype === 'float32' ? 4 : 2);
  }

  /** Make room for `positions`, keeping the filled rows (a rare copy: see the class comment). */
  private reserve(positions: number): void {
    if (positions <= this.capacity && this.tensors) return;
    const step = this.layout.mode === 'rows' ? this.capacity / 8 : this.capacity;
    const capacity = Math.min(this.maxSequence, Math.ceil(Math.max(positions, this.capacity + step) / GROWTH) * GROWTH);
    this.pool.reserve(this, this.bytesFor(capacity) - this.bytes);
    const grown = this.empty(capacity);
    // [1, kvHeads, capacity, headDim]: each head's rows move to the head's new, longer span.
    if (this.tensors) grown.forEach((t, i) => this.copyRows((this.tensors as Tensor[])[i], this.capacity, 0, t, capacity, 0, this.filled));
    this.tensors = grown;
    this.capacity = capacity;
  }
}

/**
 * The caches of one model's sequences, under one byte cap. The policy when a cache must grow past
 * the cap: evict idle caches (no generation running on them), least recently used first; their
 * owners recompute what they held on their next turn. When the caches that are generating need
 * more than the cap by themselves, the run that asked for more fails with KvCacheFullError (code
 * KV_CACHE_FULL); nothing else is disturbed.
 */
export class KvPool {
  /**
   * Most recently used last. Weak, so a sequence its owner dropped without dispose() is
   * garbage-collected with its buffers like any object (and leaves the count then).
   */
  private readonly refs = new Set<WeakRef<KvCache>>();

  constructor(readonly limitBytes: number) {}

  /** Bytes all caches take now. */
  get bytes(): number {
    let n = 0;
    for (const c of this.live()) n += c.bytes;
    return n;
  }

  add(cache: KvCache): WeakRef<KvCache> {
    const ref = new WeakRef(cache);
    this.refs.add(ref);
    return ref;
  }

  remove(ref: WeakRef<KvCache>): void {
    this.refs.delete(ref);
  }

  touch(ref: WeakRef<KvCache>): void {
    this.refs.delete(ref);
    this.refs.add(ref);
  }

  /** Make room for `extra` more bytes for `cache`, evicting idle caches if needed. */
  reserve(cache: KvCache, extra: number): void {
    let total = this.bytes + extra;
    if (total <= this.limitBytes) return;
    for (const c of this.live()) {
      if (c === cache || c.holds > 0 || c.bytes === 0) continue;
      total -= c.bytes;
      c.evict();
      if (total <= this.limitBytes) return;
    }
    throw new KvCacheFullError(total, this.limitBytes);
  }

  private *live(): Generator<KvCache> {
    for (const ref of this.refs) {
      const c = ref.deref();
      if (c) yield c;
      else this.refs.delete(ref);
    }
  }
}
