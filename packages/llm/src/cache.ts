import { DisposedError, type DType, KvCacheFullError, type Tensor, tensor } from '@llava-mini/core';
import { LLAMA_IO } from './graph.js';

/** Capacity grows in steps of at least this many positions (and at least doubles). */
const GROWTH = 256;

/** What a cache's buffers look like; read from the decoder session's `past_key_values.*` inputs. */
export interface KvLayout {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  dtype: Extract<DType, 'float32' | 'float16'>;
  /**
   * false for runtimes whose GroupQueryAttention appends to the past instead of writing into a
   * shared buffer (onnxruntime-web's WebGPU kernels: present = past rows + new rows). The cache then
   * holds exactly the filled rows: each run's present outputs become the next run's past.
   */
  inPlace: boolean;
}

/**
 * The KV cache of one sequence: per layer one key and one value buffer [1, kvHeads, capacity,
 * headDim], passed as the graph's past input and as its present output, so GroupQueryAttention
 * writes only the new rows, in place. `length` counts the positions filled.
 *
 * The capacity follows the length (doubling, up to maxSequence) instead of starting at
 * maxSequence: a conversation's bytes stay in proportion to its context, and so does whatever a
 * runtime moves per run.
 */
export class KvCache {
  private tensors: Tensor[] | undefined; // [layer0 key, layer0 value, layer1 key, ...]
  private capacity = 0;
  private filled = 0;
  /** Generations running on this cache; a held cache is never evicted. */
  holds = 0;
  /** Times the pool evicted this cache (its owner recomputes what it held). */
  evictions = 0;
  private disposed = false;
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

  /**
   * Feeds and fetches of a run that adds `n` positions: the same tensor is past input and present
   * output; without `inPlace`, the present outputs are fetched by name and handed to advance().
   */
  buffers(n: number): { past: Record<string, Tensor>; present: Record<string, Tensor> | string[] } {
    if (this.disposed) throw new DisposedError('the KV cache');
    if (!this.layout.inPlace) {
      this.pool.reserve(this, this.bytesFor(this.filled + n) - this.bytes);
      this.pool.touch(this.ref);
      this.tensors ??= this.empty(0);
      const past: Record<string, Tensor> = {};
      for (let l = 0; l < this.layout.numLayers; l++) {
        past[LLAMA_IO.pastKey(l)] = this.tensors[2 * l];
        past[LLAMA_IO.pastValue(l)] = this.tensors[2 * l + 1];
      }
      return { past, present: this.presentNames() };
    }
    this.reserve(this.filled + n);
    this.pool.touch(this.ref);
    const t = this.tensors as Tensor[];
    const past: Record<string, Tensor> = {};
    const present: Record<string, Tensor> = {};
    for (let l = 0; l < this.layout.numLayers; l++) {
      past[LLAMA_IO.pastKey(l)] = present[LLAMA_IO.presentKey(l)] = t[2 * l];
      past[LLAMA_IO.pastValue(l)] = present[LLAMA_IO.presentValue(l)] = t[2 * l + 1];
    }
    return { past, present };
  }

  /** Record that `n` more positions were written (`outputs`: the run's present tensors, when not in place). */
  advance(n: number, outputs?: Record<string, Tensor>): void {
    if (!this.layout.inPlace) {
      const next = this.presentNames().map((name) => outputs?.[name]);
      const rows = this.filled + n;
      if (next.some((t) => !t || t.dims[2] !== rows)) throw new Error(`the LLM returned present tensors that do not hold ${rows} positions`);
      this.tensors = next as Tensor[];
      this.capacity = rows;
    }
    this.filled += n;
  }

  private presentNames(): string[] {
    return Array.from({ length: 2 * this.layout.numLayers }, (_, i) => (i % 2 ? LLAMA_IO.presentValue(i >> 1) : LLAMA_IO.presentKey(i >> 1)));
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
    if (!this.layout.inPlace && this.tensors && keep < this.filled) {
      // Buffers hold exactly the filled rows: keep each head's first `keep`.
      const old = this.tensors;
      this.tensors = this.empty(keep);
      this.tensors.forEach((t, i) => this.copyRows(old[i], this.filled, t, keep, keep));
      this.capacity = keep;
    }
    this.filled = keep;
  }

  /** Each head's first `rows` rows of `from` (capacity `fromCap`) into `to` (capacity `toCap`). */
  private copyRows(from: Tensor, fromCap: number, to: Tensor, toCap: number, rows: number): void {
    const { numKvHeads, headDim } = this.layout;
    for (let h = 0; h < numKvHeads; h++) {
      const src = from.data.subarray(h * fromCap * headDim, (h * fromCap + rows) * headDim);
      (to.data as Float32Array).set(src as Float32Array, h * toCap * headDim);
    }
  }

  /** Drop the buffers now (they are allocated again on the next run). */
  release(): void {
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

  /** Make room for `positions`, keeping the filled rows (a rare copy: capacity at least doubles). */
  private reserve(positions: number): void {
    if (positions <= this.capacity && this.tensors) return;
    const capacity = Math.min(this.maxSequence, Math.max(Math.ceil(positions / GROWTH) * GROWTH, 2 * this.capacity));
    this.pool.reserve(this, this.bytesFor(capacity) - this.bytes);
    const grown = this.empty(capacity);
    // [1, kvHeads, capacity, headDim]: each head's rows move to the head's new, longer span.
    if (this.tensors) grown.forEach((t, i) => this.copyRows((this.tensors as Tensor[])[i], this.capacity, t, capacity, this.filled));
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
