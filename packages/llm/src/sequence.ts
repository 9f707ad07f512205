import { AbortError, DisposedError, InvalidOptionError, PromptTooLongError, type Tensor, tensor } from '@llava-mini/core';
import type { KvCache } from './kv/index.js';

/** What a sequence needs of its model. */
export interface SequenceModel {
  readonly config: { readonly hiddenSize: number; readonly vocabSize: number };
  readonly dtype: 'float32' | 'float16';
  readonly maxSequence: number;
  readonly prefillChunk: number;
}

/**
 * One token sequence on a LlamaModel, with its own KV cache. `prefill(rows)` appends rows
 * (prompt embeddings, e.g. fused text with vision tokens, or token ids) and returns the next-token
 * logits; `step(id)` appends one generated token. Calls on one sequence must not overlap (a
 * generation drives it); calls on different sequences may.
 */
export interface Sequence {
  readonly model: SequenceModel;
  /** Positions in this sequence's KV cache (0 after release() or an eviction). */
  readonly length: number;
  /** Bytes this sequence's KV cache takes now. */
  readonly cacheBytes: number;
  /** Times the model's KV cap evicted this sequence while it was idle. */
  readonly evictions: number;
  /**
   * Append rows, embeddings [1, S, H] or token ids, and return the logits [vocab] after the last row.
   * Long inputs run in chunks of the model's `prefillChunk`; the signal is checked between chunks.
   */
  prefill(input: Tensor | readonly number[], signal?: AbortSignal): Promise<Float32Array>;
  /** Append one generated token and return the next logits [vocab] (one decoder run, shared with other sequences stepping now where the graph allows). */
  step(id: number): Promise<Float32Array>;
  /** Throw PromptTooLongError unless `n` more positions fit in the context (checked before any work that leads to them). */
  assertRoom(n: number): void;
  /**
   * A new sequence holding a copy of this one's cache (its bytes claimed from the model's KV cap), to
   * continue the same prompt another way (several answers from one prefill); the two are
   * independent from then on, and each is disposed on its own. Not while a call runs on this one.
   */
  fork(): Promise<Sequence>;
  /** Keep only the first `length` positions (roll a conversation back). */
  truncate(length: number): void;
  /** Empty the sequence and free its cache buffers now (it stays usable). */
  release(): void;
  /** Free the cache for good; the sequence cannot run again. */
  dispose(): void;
  /** Protect the cache from eviction while a generation runs; the release says the generation is over. */
  hold(): () => void;
  /** Mark this sequence a memo (kept to save work, never needed): the KV cap evicts it before any other idle sequence. */
  makeExpendable(): void;
}

/** ids as int64, each checked to be in the vocabulary. */
export function tokenIds(ids: ArrayLike<number>, vocabSize: number): BigInt64Array {
  const data = new BigInt64Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidOptionError(`token id ${id} at index ${i} is outside the vocabulary [0, ${vocabSize}) (image placeholders are replaced by the pipeline)`);
    }
    data[i] = BigInt(id);
  }
  return data;
}

export class LlamaSequence implements Sequence {
  private busy = false;
  private disposed = false;

  constructor(
    readonly model: SequenceModel,
    private readonly cache: KvCache,
  ) {}

  get length(): number {
    return this.cache.length;
  }

  get cacheBytes(): number {
    return this.cache.bytes;
  }

  get evictions(): number {
    return this.cache.evictions;
  }

  async prefill(input: Tensor | readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    const ids = Array.isArray(input) ? tokenIds(input as readonly number[], this.model.config.vocabSize) : undefined;
    const embeds = ids ? undefined : (input as Tensor);
    const S = ids ? ids.length : this.checkEmbeds(embeds as Tensor);
    if (S === 0) throw new InvalidOptionError('prefill() needs at least one row');
    this.assertRoom(S);
    const H = this.model.config.hiddenSize;
    const chunk = this.model.prefillChunk;
    return this.exclusive(async () => {
      let logits: Float32Array | undefined;
      for (let start = 0; start < S; start += chunk) {
        if (signal?.aborted) throw new AbortError('prefill was aborted');
        const n = Math.min(chunk, S - start);
        let part: Tensor | BigInt64Array;
        if (ids) part = ids.subarray(start, start + n);
        else part = n === S ? (embeds as Tensor) : tensor((embeds as Tensor).dtype, [1, n, H], (embeds as Tensor).data.subarray(start * H, (start + n) * H) as never);
        logits = await this.cache.extend(part, n);
      }
      return logits as Float32Array;
    });
  }

  async step(id: number): Promise<Float32Array> {
    const [token] = tokenIds([id], this.model.config.vocabSize);
    this.assertRoom(1);
    return this.exclusive(() => this.cache.step(token));
  }

  async fork(): Promise<Sequence> {
    return new LlamaSequence(this.model, await this.exclusive(() => this.cache.fork()));
  }

  assertRoom(n: number): void {
    if (n > this.cache.free) {
      throw new PromptTooLongError(this.cache.length + n, this.model.maxSequence, `${this.cache.length} cached + ${n} new positions`);
    }
  }

  truncate(length: number): void {
    this.cache.truncate(length);
  }

  release(): void {
    this.cache.release();
  }

  dispose(): void {
    this.disposed = true;
    this.cache.dispose();
  }

  makeExpendable(): void {
    this.cache.expendable = true;
  }

  hold(): () => void {
    const release = this.cache.hold();
    return () => {
      release();
      // The generation is over: its rows come home (a step of it cannot be running: steps hold `busy`).
      if (!this.busy) this.cache.park();
    };
  }

  private async exclusive<T>(job: () => Promise<T>): Promise<T> {
    if (this.disposed) throw new DisposedError('the sequence');
    if (this.busy) throw new InvalidOptionError('this sequence is already running; calls on one sequence must not overlap (use one sequence per conversation)');
    this.busy = true;
    const unhold = this.cache.hold();
    try {
      return await job();
    } finally {
      this.busy = false;
      unhold();
    }
  }

  private checkEmbeds(embeds: Tensor): number {
    const H = this.model.config.hiddenSize;
    if (embeds.dtype !== this.model.dtype) throw new InvalidOptionError(`embeddings are ${embeds.dtype}, the model runs in ${this.model.dtype}`);
    const [B, S, W] = embeds.dims;
    if (embeds.dims.length !== 3 || B !== 1 || W !== H || S === 0) {
      throw new InvalidOptionError(`embeddings must have shape [1, S >= 1, ${H}], got [${embeds.dims.join(', ')}]`);
    }
    return S;
  }
}
