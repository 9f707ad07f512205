import { DisposedError, isDeviceTensor, type Tensor, tensor } from '@llava-mini/core';
import { LLAMA_IO } from '../io.js';
import { type BatchStats, cacheOutputNames, copyHeadRows, type Decoder, GROWTH, KvCache, type KvStrategy, type NewRows, newRowFeeds, pastFeeds } from './cache.js';
import type { KvPool } from './pool.js';

/**
 * 'rows' mode (float32, the default): the graph reads the cache as an input only and returns the
 * run's new rows (`new_key_values.*`), which the cache writes into its host buffers. What each new
 * row may see is fed explicitly: `position_ids`, `past_bias` (0 for held rows, -inf beyond) and
 * `causal_bias` among the new rows.
 *
 * A decode step goes through the strategy's DecodeArena, which runs the steps of all sequences
 * stepping at the same time as one batch; a sequence stepping alone runs on its own buffers.
 */
export class RowsStrategy implements KvStrategy {
  private readonly arena: DecodeArena;

  constructor(private readonly decoder: Decoder) {
    this.arena = new DecodeArena(decoder);
  }

  open(pool: KvPool): KvCache {
    return new RowsCache(this.decoder, pool, this.arena);
  }

  get sharedBytes(): number {
    return this.arena.bytes;
  }

  get batchStats(): BatchStats {
    return { ...this.arena.stats };
  }
}

/**
 * One sequence's rows: its own buffers [1, kvHeads, capacity, headDim] hold every position, except
 * while it decodes in the arena, where the positions added since it moved in live in its slot
 * (the arena owns that part; `leave` brings them back).
 *
 * Attention reads every capacity row (the unheld ones masked), so capacity grows by an eighth (at
 * least GROWTH rows): the rows read stay within 1/8 of the length, and growing copies the cache
 * once per 1/8 of growth.
 */
class RowsCache extends KvCache {
  private tensors: Tensor[] | undefined;
  private capacity = 0;

  constructor(
    decoder: Decoder,
    pool: KvPool,
    private readonly arena: DecodeArena,
  ) {
    super(decoder, pool);
  }

  get bytes(): number {
    return this.bytesFor(this.capacity);
  }

  async extend(rows: NewRows, n: number): Promise<Float32Array> {
    this.arena.leave(this);
    const epoch = this.begin();
    const past = this.filled;
    this.reserve(past + n);
    const buffers = this.tensors as Tensor[];
    const names = cacheOutputNames(this.decoder.layout.numLayers, 'new');
    const feeds = { ...newRowFeeds(rows, 1, this.decoder), ...pastFeeds(buffers), ...this.positionFeeds(past, n) };
    const out = await this.decoder.run(feeds, [LLAMA_IO.logits, ...names]);
    this.landed(epoch, out);
    buffers.forEach((t, i) => {
      const got = out[names[i]];
      if (!got || isDeviceTensor(got) || got.dims[2] !== n || got.dims[0] !== 1) throw new Error(`the LLM returned ${names[i]} that does not hold ${n} new rows on the host`);
      this.copyRows(got, n, 0, t, this.capacity, past, n);
    });
    this.filled += n;
    return (out[LLAMA_IO.logits] as Tensor).data as Float32Array;
  }

  override step(id: bigint): Promise<Float32Array> {
    return this.arena.step(this, id);
  }

  /** Rows past the length are never read (past_bias masks them): nothing to move. */
  truncate(length: number): void {
    this.arena.leave(this);
    this.filled = Math.max(0, Math.min(this.filled, length));
  }

  protected drop(): void {
    this.arena.leave(this, false);
    this.tensors = undefined;
    this.capacity = 0;
  }

  /** Its rows leave the arena, which the sequences still decoding then stop paying for. */
  override park(): void {
    this.arena.leave(this);
  }

  /** The rows a decode step added in the arena come home first: the own buffers then hold every position. */
  protected async hostRows(): Promise<[Tensor[] | undefined, number]> {
    this.arena.leave(this);
    return [this.tensors, this.capacity];
  }

  protected sibling(): RowsCache {
    return new RowsCache(this.decoder, this.pool, this.arena);
  }

  protected adopt(tensors: Tensor[], capacity: number): void {
    [this.tensors, this.capacity] = [tensors, capacity];
  }

  /** Moving into the arena: the held rows, into the slot views `slot(i)` (tensor i = 2 * layer + kind, capacity `cap`). */
  copyOut(slot: (i: number) => Float32Array, cap: number): void {
    const { numKvHeads, headDim } = this.decoder.layout;
    (this.tensors ?? []).forEach((t, i) => copyHeadRows(numKvHeads, headDim, this.filled, t.data as Float32Array, this.capacity, 0, slot(i), cap, 0));
  }

  /** A decode step wrote position `length` into the arena slot. */
  steppedInArena(): void {
    this.filled++;
  }

  /** Moving out of the arena: rows from..length-1 of the slot come back into the own buffers. */
  restore(from: number, slot: (i: number) => Float32Array, cap: number): void {
    const length = this.filled;
    this.filled = from;
    this.reserve(length);
    const { numKvHeads, headDim } = this.decoder.layout;
    (this.tensors as Tensor[]).forEach((t, i) => copyHeadRows(numKvHeads, headDim, length - from, slot(i), cap, from, t.data as Float32Array, this.capacity, from));
    this.filled = length;
  }

  /** What the graph needs to know of where `n` new rows go after `past` held ones. */
  private positionFeeds(past: number, n: number): Record<string, Tensor> {
    const causal = new Float32Array(n * n);
    for (let i = 0; i < n; i++) causal.fill(-Infinity, i * n + i + 1, (i + 1) * n);
    return {
      [LLAMA_IO.positionIds]: tensor('int64', [1, n], BigInt64Array.from({ length: n }, (_, i) => BigInt(past + i))),
      [LLAMA_IO.pastBias]: tensor('float32', [1, 1, 1, 1, this.capacity], new Float32Array(this.capacity).fill(-Infinity, past)),
      [LLAMA_IO.causalBias]: tensor('float32', [n, n], causal),
    };
  }

  /** Make room for `positions`, keeping the filled rows (a rare copy: see the class comment). */
  private reserve(positions: number): void {
    if (positions <= this.capacity && this.tensors) return;
    [this.tensors, this.capacity] = this.grow(this.tensors, this.capacity, positions, 1.125);
  }
}

/** Run `f` as a new task, after all pending microtasks (setImmediate in Node, a MessageChannel message in browsers). */
function nextTask(f: () => void): void {
  const g = globalThis as { setImmediate?: (f: () => void) => void };
  if (g.setImmediate) {
    g.setImmediate(f);
    return;
  }
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    channel.port1.close();
    f();
  };
  channel.port2.postMessage(0);
}

/** One decode step a sequence asked for, waiting for the next batched run. */
interface Pending {
  cache: RowsCache;
  id: bigint;
  resolve: (logits: Float32Array) => void;
  reject: (err: unknown) => void;
}

/**
 * Continuous batching of decode steps: sequences that step at the same time decode in one run
 * with batch B. A step joins the run that starts after the current one ends, so a sequence that
 * finished its prefill joins between steps.
 *
 * The KV cache of a run must be one tensor [B, kvHeads, capacity, headDim], so decoding sequences
 * live in an arena: slot b is the contiguous span [kvHeads, capacity, headDim] at b, and the first
 * B slots are the run's past. A sequence moves in once, when it first decodes next to another (its
 * held rows are copied into its slot), decodes there (the run's new rows are written into the slot),
 * and moves out once (leave(): the rows it added go back to its own buffers). Nothing is copied
 * whole per step. Slots stay in order of arrival; a leaving sequence's slot is filled by the last one.
 *
 * Attention reads every slot's `capacity` rows, masked per sequence (past_bias), so a short
 * sequence next to a long one pays for the long one's rows: the price of one matrix product.
 */
class DecodeArena {
  private members: RowsCache[] = [];
  /** Positions each member held when it moved in (its own buffers hold those). */
  private joined = new Map<RowsCache, number>();
  private arena: Float32Array[] = []; // [layer0 key, layer0 value, ...], each slots x kvHeads x capacity x headDim
  private slots = 0;
  private capacity = 0;
  private pending: Pending[] = [];
  private running = false;
  private scheduled = false;
  readonly stats: BatchStats = { runs: 0, steps: 0, joins: 0 };

  constructor(private readonly decoder: Decoder) {}

  /** Bytes the arena takes (not counted against the pool's cap: it exists only while sequences decode together). */
  get bytes(): number {
    return this.arena.reduce((n, a) => n + a.byteLength, 0);
  }

  /** Append token `id` to `cache` in the next batched run; resolves to its next logits. */
  step(cache: RowsCache, id: bigint): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.pending.push({ cache, id, resolve, reject });
      this.schedule();
    });
  }

  /** Move `cache` out of the arena, its added rows written back to its own buffers unless `keepRows` is false. */
  leave(cache: RowsCache, keepRows = true): void {
    const from = this.joined.get(cache);
    if (from === undefined) return;
    const b = this.members.indexOf(cache);
    try {
      if (keepRows && cache.length > from) cache.restore(from, (i) => this.slotView(b, i), this.capacity);
    } finally {
      // Out of the arena whatever happened to the copy back (a KvCacheFullError from growing its buffers).
      this.remove(cache, b);
    }
  }

  private remove(cache: RowsCache, b: number): void {
    this.joined.delete(cache);
    const last = this.members.length - 1;
    if (b !== last) {
      // The last slot takes the leaver's place, so the first B slots stay the members.
      const span = this.slotSize();
      for (const a of this.arena) a.copyWithin(b * span, last * span, (last + 1) * span);
      this.members[b] = this.members[last];
    }
    this.members.pop();
    if (this.members.length === 0) {
      this.arena = [];
      this.slots = 0;
      this.capacity = 0;
    }
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // After the microtasks of the run that just ended: every sequence it answered samples its next
    // token and steps again before the next run starts, so they all make it into one batch.
    nextTask(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    this.running = true;
    try {
      await this.decode(batch);
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.running = false;
      if (this.pending.length) this.schedule();
    }
  }

  private async decode(batch: Pending[]): Promise<void> {
    this.stats.runs++;
    this.stats.steps += batch.length;
    // A sequence stepping alone, with no arena in use, runs on its own buffers: no move at all.
    if (batch.length === 1 && this.members.length === 0) {
      const [p] = batch;
      p.resolve(await p.cache.extend(BigInt64Array.of(p.id), 1));
      return;
    }
    for (const p of batch) if (!this.joined.has(p.cache)) this.join(p.cache);
    this.reserve(Math.max(...this.members.map((c) => c.length + 1)));
    const B = this.members.length;
    const { numLayers, numKvHeads, headDim } = this.decoder.layout;
    const byCache = new Map(batch.map((p) => [p.cache, p]));
    // Members not stepping this time (between turns of a generation) ride along: their row is
    // computed and dropped, and nothing of theirs changes.
    const ids = BigInt64Array.from(this.members, (c) => byCache.get(c)?.id ?? 0n);
    const bias = new Float32Array(B * this.capacity);
    this.members.forEach((c, b) => bias.fill(-Infinity, b * this.capacity + c.length, (b + 1) * this.capacity));
    const past = this.arena.map((a) => tensor('float32', [B, numKvHeads, this.capacity, headDim], a.subarray(0, B * this.slotSize())));
    const feeds: Record<string, Tensor> = {
      ...newRowFeeds(ids, B, this.decoder),
      ...pastFeeds(past),
      [LLAMA_IO.positionIds]: tensor('int64', [B, 1], BigInt64Array.from(this.members, (c) => BigInt(c.length))),
      [LLAMA_IO.pastBias]: tensor('float32', [B, 1, 1, 1, this.capacity], bias),
      [LLAMA_IO.causalBias]: tensor('float32', [1, 1]),
    };
    const names = cacheOutputNames(numLayers, 'new');
    const members = [...this.members];
    const out = await this.decoder.run(feeds, [LLAMA_IO.logits, ...names]);
    const logits = (out[LLAMA_IO.logits] as Tensor).data as Float32Array;
    members.forEach((c, b) => {
      const p = byCache.get(c);
      if (!p) return;
      // A member released or disposed during the run has left (and its slot went to another).
      const now = this.members.indexOf(c);
      if (now < 0) {
        p.reject(new DisposedError('the sequence (during its decode step)'));
        return;
      }
      // Row b of each [B, kvHeads, 1, headDim] output goes to position length of its slot now.
      names.forEach((name, i) => {
        const rows = (out[name] as Tensor).data as Float32Array;
        copyHeadRows(numKvHeads, headDim, 1, rows.subarray(b * numKvHeads * headDim), 1, 0, this.slotView(now, i), this.capacity, c.length);
      });
      c.steppedInArena();
      p.resolve(logits.slice(b * this.decoder.vocabSize, (b + 1) * this.decoder.vocabSize));
    });
  }

  /** Move `cache` into the next slot: its held rows are copied in (once). */
  private join(cache: RowsCache): void {
    this.stats.joins++;
    this.reserve(cache.length + 1, this.members.length + 1);
    const b = this.members.length;
    this.members.push(cache);
    this.joined.set(cache, cache.length);
    cache.copyOut((i) => this.slotView(b, i), this.capacity);
  }

  private slotSize(): number {
    return this.decoder.layout.numKvHeads * this.capacity * this.decoder.layout.headDim;
  }

  /** Slot b of arena tensor i, as [kvHeads, capacity, headDim]. */
  private slotView(b: number, i: number): Float32Array {
    const span = this.slotSize();
    return this.arena[i].subarray(b * span, (b + 1) * span);
  }

  /** Room for `positions` per slot and `slots` slots, keeping what the slots hold (a rare copy). */
  private reserve(positions: number, slots = this.members.length): void {
    if (positions <= this.capacity && slots <= this.slots) return;
    const capacity = positions <= this.capacity ? this.capacity : Math.ceil(Math.max(positions, this.capacity * 1.125) / GROWTH) * GROWTH;
    const count = Math.max(slots, this.slots, 4);
    const { numLayers, numKvHeads, headDim } = this.decoder.layout;
    const next = Array.from({ length: 2 * numLayers }, () => new Float32Array(count * numKvHeads * capacity * headDim));
    // The members' slots, [members x kvHeads] heads of `this.capacity` rows each, keep their place.
    for (let i = 0; i < this.arena.length; i++) copyHeadRows(this.members.length * numKvHeads, headDim, this.capacity, this.arena[i], this.capacity, 0, next[i], capacity, 0);
    this.arena = next;
    this.slots = count;
    this.capacity = capacity;
  }
}
