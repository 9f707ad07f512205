import { DisposedError, type Tensor, tensor } from '@llava-mini/core';
import { copyHeadRows, type KvCache, type KvLayout } from './cache.js';
import { LLAMA_IO } from './io.js';

/** Arena capacity grows in steps of this many positions (and by at least an eighth). */
const GROWTH = 256;

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
  cache: KvCache;
  id: bigint;
  resolve: (logits: Float32Array) => void;
  reject: (err: unknown) => void;
}

/** What a DecodeBatch needs from the model: one decoder run on feeds, and a step of one sequence on its own cache. */
export interface BatchRunner {
  run(feeds: Record<string, Tensor>, fetches: string[]): Promise<Record<string, Tensor>>;
  alone(cache: KvCache, id: bigint): Promise<Float32Array>;
}

/**
 * Continuous batching of decode steps ('rows' graphs): sequences that step at the same time
 * decode in one run with batch B. A step joins the run that starts after the current one ends, so
 * a sequence that finished its prefill joins between steps.
 *
 * The KV cache of a run must be one tensor [B, kvHeads, capacity, headDim], so decoding sequences
 * live in an arena: slot b is the contiguous span [kvHeads, capacity, headDim] at b, and the first
 * B slots are the run's past. A sequence moves in once, when it first decodes next to another (its
 * held rows are copied into its slot), decodes there (the run's new rows are written into the slot),
 * and moves out once (leave(): the rows it added go back to its own cache). Nothing is copied whole
 * per step. Slots stay in order of arrival; a leaving sequence's slot is filled by the last one.
 *
 * Attention reads every slot's `capacity` rows, masked per sequence (past_bias), so a short
 * sequence next to a long one pays for the long one's rows: the price of one matrix product.
 */
export class DecodeBatch {
  private members: KvCache[] = [];
  /** Positions each member held when it moved in (its own cache holds those). */
  private joined = new Map<KvCache, number>();
  private arena: Float32Array[] = []; // [layer0 key, layer0 value, ...], each slots x kvHeads x capacity x headDim
  private slots = 0;
  private capacity = 0;
  private pending: Pending[] = [];
  private running = false;
  private scheduled = false;
  /** Decode runs made, and sequence steps they carried (steps / runs = mean batch). */
  readonly stats = { runs: 0, steps: 0 };

  constructor(
    private readonly layout: KvLayout,
    private readonly hiddenSize: number,
    private readonly vocabSize: number,
    private readonly runner: BatchRunner,
  ) {}

  /** Bytes the arena takes. */
  get bytes(): number {
    return this.arena.reduce((n, a) => n + a.byteLength, 0);
  }

  /** Append token `id` to `cache` in the next batched run; resolves to its next logits. */
  step(cache: KvCache, id: bigint): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.pending.push({ cache, id, resolve, reject });
      this.schedule();
    });
  }

  /** Whether `cache` decodes in the arena now (its rows past joined() live there). */
  has(cache: KvCache): boolean {
    return this.joined.has(cache);
  }

  /**
   * Move `cache` out of the arena: the rows it added there are written back into its own buffers
   * (unless its own buffers were dropped meanwhile: an idle member evicted by the KV cap).
   */
  leave(cache: KvCache, keepRows = true): void {
    const from = this.joined.get(cache);
    if (from === undefined) return;
    const b = this.members.indexOf(cache);
    const added = cache.length - from;
    try {
      if (keepRows && added > 0 && cache.bytes > 0) cache.restore(from, added, (i) => this.slotView(b, i), this.capacity);
    } finally {
      // Out of the arena whatever happened to the copy back (a KvCacheFullError from growing its buffers).
      this.remove(cache, b);
    }
  }

  private remove(cache: KvCache, b: number): void {
    this.joined.delete(cache);
    const last = this.members.length - 1;
    if (b !== last) {
      // The last slot takes the leaver's place, so the first B slots stay the members.
      const span = this.slotSize();
      for (const a of this.arena) a.copyWithin(b * span, last * span, (last + 1) * span);
      this.members[b] = this.members[last];
    }
    this.members.pop();
    if (this.members.length === 0) this.free();
  }

  /** Drop the arena (no member left). */
  private free(): void {
    this.arena = [];
    this.slots = 0;
    this.capacity = 0;
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
    // A sequence stepping alone, with no arena in use, runs on its own cache: no move at all.
    if (batch.length === 1 && this.members.length === 0) {
      const [p] = batch;
      p.resolve(await this.runner.alone(p.cache, p.id));
      return;
    }
    // An idle member whose cache the KV cap evicted (or that was emptied) holds nothing here any more.
    for (const c of [...this.members]) if (c.bytes === 0) this.leave(c);
    for (const p of batch) if (!this.joined.has(p.cache)) this.join(p.cache);
    this.reserve(Math.max(...this.members.map((c) => c.length + 1)));
    const B = this.members.length;
    const { numLayers, numKvHeads, headDim } = this.layout;
    const byCache = new Map(batch.map((p) => [p.cache, p]));
    // Members not stepping this time (between turns of a generation) ride along: their row is
    // computed and dropped, and nothing of theirs changes.
    const ids = BigInt64Array.from(this.members, (c) => byCache.get(c)?.id ?? 0n);
    const positions = BigInt64Array.from(this.members, (c) => BigInt(c.length));
    const bias = new Float32Array(B * this.capacity);
    this.members.forEach((c, b) => bias.fill(-Infinity, b * this.capacity + c.length, (b + 1) * this.capacity));
    const feeds: Record<string, Tensor> = {
      [LLAMA_IO.inputsEmbeds]: tensor(this.layout.dtype, [B, 0, this.hiddenSize]),
      [LLAMA_IO.inputIds]: tensor('int64', [B, 1], ids),
      [LLAMA_IO.positionIds]: tensor('int64', [B, 1], positions),
      [LLAMA_IO.pastBias]: tensor('float32', [B, 1, 1, 1, this.capacity], bias),
      [LLAMA_IO.causalBias]: tensor('float32', [1, 1]),
    };
    const dims = [B, numKvHeads, this.capacity, headDim];
    for (let l = 0; l < numLayers; l++) {
      feeds[LLAMA_IO.pastKey(l)] = tensor('float32', dims, this.arena[2 * l].subarray(0, B * this.slotSize()));
      feeds[LLAMA_IO.pastValue(l)] = tensor('float32', dims, this.arena[2 * l + 1].subarray(0, B * this.slotSize()));
    }
    const names = Array.from({ length: numLayers }, (_, l) => [LLAMA_IO.newKey(l), LLAMA_IO.newValue(l)]).flat();
    const members = [...this.members];
    const out = await this.runner.run(feeds, [LLAMA_IO.logits, ...names]);
    const logits = out[LLAMA_IO.logits].data as Float32Array;
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
        const rows = out[name].data as Float32Array;
        const slot = this.slotView(now, i);
        copyHeadRows(numKvHeads, headDim, 1, rows.subarray(b * numKvHeads * headDim), 1, 0, slot, this.capacity, c.length);
      });
      c.advanceInArena(1);
      p.resolve(logits.slice(b * this.vocabSize, (b + 1) * this.vocabSize));
    });
  }

  /** Move `cache` into the next slot: its held rows are copied in (once). */
  private join(cache: KvCache): void {
    this.reserve(cache.length + 1, this.members.length + 1);
    const b = this.members.length;
    this.members.push(cache);
    this.joined.set(cache, cache.length);
    cache.copyOut((i) => this.slotView(b, i), this.capacity);
  }

  private slotSize(): number {
    return this.layout.numKvHeads * this.capacity * this.layout.headDim;
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
    const { numLayers, numKvHeads, headDim } = this.layout;
    const next = Array.from({ length: 2 * numLayers }, () => new Float32Array(count * numKvHeads * capacity * headDim));
    // The members' slots, [members x kvHeads] heads of `this.capacity` rows each, keep their place.
    for (let i = 0; i < this.arena.length; i++) copyHeadRows(this.members.length * numKvHeads, headDim, this.capacity, this.arena[i], this.capacity, 0, next[i], capacity, 0);
    this.arena = next;
    this.slots = count;
    this.capacity = capacity;
  }
}
