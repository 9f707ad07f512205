import {
  AbortError,
  type Backend,
  type Device,
  type DeviceTensor,
  type DeviceRequest,
  DisposedError,
  type InferenceSession,
  InvalidOptionError,
  type ModelSource,
  type RunTraffic,
  PromptTooLongError,
  type SessionOptions,
  SessionError,
  type Tensor,
  tensor,
} from '@llava-mini/core';
import { DecodeBatch } from './batch.js';
import { KvCache, type KvLayout, KvPool } from './cache.js';
import type { LlamaConfig } from './config.js';
import { LLAMA_IO } from './io.js';

/**
 * The graphs of a backbone: the decoder (buildLlamaGraph), which looks up its own token ids, and
 * optionally the token embeddings alone (buildEmbeddingsGraph), loaded on the first embed() call.
 */
export interface LlamaModelFiles {
  model: ModelSource;
  embeddings?: ModelSource;
}

/** Default cap on the bytes of all sequences' KV caches of one model (see KvPool for the policy). */
export const DEFAULT_KV_CACHE_BYTES = 2 * 2 ** 30;

export interface LlamaModelOptions {
  config: LlamaConfig;
  device?: DeviceRequest;
  /**
   * The context window in positions. Default min(max_position_embeddings, 4096). At most the
   * graph's `maxPositions` (its RoPE table rows; buildLlamaGraph's default is max_position_embeddings).
   */
  maxSequence?: number;
  /**
   * Longest slice of a prompt run at once. onnxruntime's CPU attention keeps a heads x chunk x
   * maxSequence score buffer, so chunking bounds prefill memory. Default 512.
   */
  prefillChunk?: number;
  /**
   * Cap on the bytes of all sequences' KV caches together (default 2 GiB). Beyond it, idle
   * sequences are evicted (least recently used first) and recompute on their next turn; when the
   * sequences generating right now need more than the cap, the run fails with KvCacheFullError.
   */
  kvCacheBytes?: number;
  /** Passed to both sessions (threads, optimization level). */
  session?: Omit<SessionOptions, 'device'>;
}

/** Time spent inside onnxruntime, for telling runtime cost from JavaScript overhead. */
export interface RunProfile {
  runs: number;
  runMs: number;
}

const now = (): number => globalThis.performance.now();

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new InvalidOptionError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** The KV-cache layout the decoder graph declares (its past_key_values inputs and its outputs), so nothing is assumed. */
function kvLayout(session: InferenceSession): KvLayout {
  const keys = session.inputs.filter((v) => /^past_key_values\.\d+\.key$/.test(v.name));
  const first = keys[0];
  const [, kvHeads, , headDim] = first?.dims ?? [];
  if (!first || typeof kvHeads !== 'number' || typeof headDim !== 'number' || (first.dtype !== 'float32' && first.dtype !== 'float16')) {
    throw new SessionError(`the decoder graph has no usable ${LLAMA_IO.pastKey(0)} input [batch, kv_heads, capacity, head_dim] of float32/float16`);
  }
  const rows = session.outputNames.includes(LLAMA_IO.newKey(0));
  const mode = rows ? 'rows' : session.kvCacheInPlace === false ? 'append' : 'shared';
  return { numLayers: keys.length, numKvHeads: kvHeads, headDim, dtype: first.dtype, mode };
}

/**
 * A loaded LLaMA backbone: the decoder and token-embedding sessions, and nothing that belongs to
 * a conversation. Each sequence (`model.sequence()`) owns its KV cache; any number of them may run
 * at once (their runs are queued by the backend, one at a time, in order). The dtype and cache
 * layout are read from the decoder session's inputs.
 */
export class LlamaModel {
  readonly profile: RunProfile = { runs: 0, runMs: 0 };
  readonly kv: KvLayout;
  private readonly pool: KvPool;
  /** Decode steps of sequences stepping at the same time run together ('rows' graphs only). */
  private readonly batch: DecodeBatch | undefined;
  private embedSession: Promise<InferenceSession> | undefined;
  private disposed = false;

  private constructor(
    readonly config: LlamaConfig,
    private readonly session: InferenceSession,
    private readonly embeddings: (() => Promise<InferenceSession>) | undefined,
    readonly maxSequence: number,
    readonly prefillChunk: number,
    kvCacheBytes: number,
  ) {
    this.kv = kvLayout(session);
    this.pool = new KvPool(kvCacheBytes);
    if (this.kv.mode === 'rows') {
      this.batch = new DecodeBatch(this.kv, config.hiddenSize, config.vocabSize, {
        run: (feeds, fetches) => this.run(this.session, feeds, fetches),
        alone: (cache, id) => this.forward(cache, BigInt64Array.of(id), 1),
      });
    }
    if (!session.inputNames.includes(LLAMA_IO.inputIds)) {
      throw new SessionError(`the decoder graph has no ${LLAMA_IO.inputIds} input (made before token embeddings moved into it): convert the model again`);
    }
  }

  static async create(backend: Backend, files: LlamaModelFiles, options: LlamaModelOptions): Promise<LlamaModel> {
    const c = options.config;
    const maxSequence = positiveInt('maxSequence', options.maxSequence ?? Math.min(c.maxPositionEmbeddings, 4096));
    if (maxSequence > c.maxPositionEmbeddings) {
      throw new InvalidOptionError(`maxSequence ${maxSequence} exceeds the model's max_position_embeddings ${c.maxPositionEmbeddings}`);
    }
    const prefillChunk = positiveInt('prefillChunk', options.prefillChunk ?? 512);
    const kvCacheBytes = positiveInt('kvCacheBytes', options.kvCacheBytes ?? DEFAULT_KV_CACHE_BYTES);
    const sessionOptions = { ...options.session, device: options.device ?? 'auto' };
    // The decoder honours the session's attentionQueryLimit (prefill chunks below), so its attention stays on the device.
    // Present outputs may stay in GPU memory and come back as the next run's past ('append' mode on
    // onnxruntime-web's WebGPU): the cache never crosses to the host between steps.
    const presents = Array.from({ length: c.numLayers }, (_, l) => [LLAMA_IO.presentKey(l), LLAMA_IO.presentValue(l)]).flat();
    const session = await backend.createSession(files.model, { ...sessionOptions, chunksAttention: true, deviceOutputs: presents });
    const { embeddings } = files;
    const loadEmbeddings = embeddings === undefined ? undefined : () => backend.createSession(embeddings, { ...sessionOptions, device: session.device });
    // A runtime whose attention is wrong past some query length (onnxruntime-node's WebGPU) gets shorter chunks.
    const chunk = Math.min(prefillChunk, session.attentionQueryLimit ?? Infinity);
    try {
      return new LlamaModel(c, session, loadEmbeddings, maxSequence, chunk, kvCacheBytes);
    } catch (err) {
      await session.dispose();
      throw err;
    }
  }

  get device(): Device {
    return this.session.device;
  }

  /** The float dtype of the graphs' I/O (and of embeddings passed to prefill). */
  get dtype(): KvLayout['dtype'] {
    return this.kv.dtype;
  }

  /** Bytes the decoder's runs moved so far (outputs handed back, copies into preallocated outputs). */
  get traffic(): RunTraffic {
    return { ...this.session.traffic };
  }

  /**
   * Bytes all sequences' KV caches take now, with the decode arena of sequences decoding together
   * (which exists only while they do, and is not counted against kvCacheBytes).
   */
  get cacheBytes(): number {
    return this.pool.bytes + (this.batch?.bytes ?? 0);
  }

  /** Decode runs and the sequence steps they carried (steps / runs: the mean batch), where steps are batched. */
  get batchStats(): { runs: number; steps: number } | undefined {
    return this.batch && { ...this.batch.stats };
  }

  /** @internal One decode step of `cache` for `ids` (one id, from tokenIds): batched with other sequences stepping now, where the graph allows. */
  decode(cache: KvCache, ids: BigInt64Array): Promise<Float32Array> {
    return this.batch ? this.batch.step(cache, ids[0]) : this.forward(cache, ids, 1);
  }

  /** @internal Bring `cache` out of the decode arena (before anything but a decode step touches it); `keepRows` false when its rows are dropped anyway. */
  settle(cache: KvCache, keepRows = true): void {
    this.batch?.leave(cache, keepRows);
  }

  /** The cap on cacheBytes. */
  get cacheLimitBytes(): number {
    return this.pool.limitBytes;
  }

  /** A new, empty sequence with its own KV cache (freed by its dispose()). */
  sequence(): Sequence {
    if (this.disposed) throw new DisposedError('the model');
    return new Sequence(this, new KvCache(this.kv, this.maxSequence, this.pool));
  }

  /**
   * Token embeddings [1, S, H] for ids in [0, vocab), from the embeddings graph (loaded on the first
   * call). Only callers that need embeddings before the decoder runs need it (the pipeline's
   * pre-fusion): prefill() and step() take ids themselves.
   */
  async embed(ids: ArrayLike<number>): Promise<Tensor> {
    if (ids.length === 0) throw new InvalidOptionError('embed() needs at least one token id');
    if (!this.embeddings) throw new InvalidOptionError('embed() needs the embeddings graph (LlamaModelFiles.embeddings); prefill() and step() take token ids without it');
    const data = this.tokenIds(ids);
    this.embedSession ??= this.embeddings();
    const out = await this.run(await this.embedSession, { [LLAMA_IO.inputIds]: tensor('int64', [1, ids.length], data) }, [LLAMA_IO.inputsEmbeds]);
    return out[LLAMA_IO.inputsEmbeds];
  }

  /** @internal ids as int64, each checked to be in the vocabulary. */
  tokenIds(ids: ArrayLike<number>): BigInt64Array {
    const data = new BigInt64Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new InvalidOptionError(`token id ${id} at index ${i} is outside the vocabulary [0, ${this.config.vocabSize}) (image placeholders are replaced by the pipeline)`);
      }
      data[i] = BigInt(id);
    }
    return data;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const embed = this.embedSession?.catch(() => undefined);
    await Promise.all([this.session.dispose(), embed?.then((s) => s?.dispose())]);
  }

  /** @internal One decoder run over `n` new rows of `cache` (embeddings [1, n, H] or token ids); returns the logits after the last row. */
  async forward(cache: KvCache, rows: Tensor | BigInt64Array, n: number): Promise<Float32Array> {
    await cache.settle();
    const past = cache.length;
    const epoch = cache.epoch;
    const { past: pastFeeds, fetches } = cache.buffers(n);
    const feeds = { ...this.rowFeeds(rows, 1), ...pastFeeds, ...this.positionFeeds(past, n, cache.rows) };
    const out = await this.runKeeping(feeds, Array.isArray(fetches) ? [LLAMA_IO.logits, ...fetches] : { [LLAMA_IO.logits]: tensor('float32', [1, this.config.vocabSize]), ...fetches });
    cache.advance(n, out, epoch);
    return (out[LLAMA_IO.logits] as Tensor).data as Float32Array;
  }

  /** inputs_embeds and input_ids for new rows given as embeddings [B, n, H] or ids (B rows of n): the other one is empty. */
  private rowFeeds(rows: Tensor | BigInt64Array, batch: number): Record<string, Tensor> {
    const H = this.config.hiddenSize;
    if (rows instanceof BigInt64Array) {
      return { [LLAMA_IO.inputsEmbeds]: tensor(this.dtype, [batch, 0, H]), [LLAMA_IO.inputIds]: tensor('int64', [batch, rows.length / batch], rows) };
    }
    return { [LLAMA_IO.inputsEmbeds]: rows, [LLAMA_IO.inputIds]: tensor('int64', [batch, 0]) };
  }

  /** What the graph needs to know of where `n` new rows go after `past` cached ones (capacity `rows`). */
  private positionFeeds(past: number, n: number, rows: number): Record<string, Tensor> {
    const total = past + n;
    if (this.kv.mode !== 'rows') {
      return { [LLAMA_IO.seqlensK]: tensor('int32', [1], Int32Array.of(total - 1)), [LLAMA_IO.totalSequenceLength]: tensor('int32', [], Int32Array.of(total)) };
    }
    const positions = BigInt64Array.from({ length: n }, (_, i) => BigInt(past + i));
    const causal = new Float32Array(n * n);
    for (let i = 0; i < n; i++) causal.fill(-Infinity, i * n + i + 1, (i + 1) * n);
    return {
      [LLAMA_IO.positionIds]: tensor('int64', [1, n], positions),
      [LLAMA_IO.pastBias]: tensor('float32', [1, 1, 1, 1, rows], new Float32Array(rows).fill(-Infinity, past)),
      [LLAMA_IO.causalBias]: tensor('float32', [n, n], causal),
    };
  }

  private run(session: InferenceSession, feeds: Record<string, Tensor | DeviceTensor>, fetches: readonly string[] | Record<string, Tensor>): Promise<Record<string, Tensor>> {
    return this.timed(() => session.run(feeds, fetches));
  }

  /** A decoder run whose outputs the session keeps on the device stay there (the cache's presents); the others come to the host. */
  private runKeeping(feeds: Record<string, Tensor | DeviceTensor>, fetches: readonly string[] | Record<string, Tensor>): Promise<Record<string, Tensor | DeviceTensor>> {
    const s = this.session;
    return this.timed(() => (s.deviceOutputs.size && Array.isArray(fetches) ? s.runOnDevice(feeds, fetches) : s.run(feeds, fetches)));
  }

  private async timed<T>(job: () => Promise<T>): Promise<T> {
    if (this.disposed) throw new DisposedError('the model');
    const t0 = now();
    try {
      return await job();
    } finally {
      this.profile.runs++;
      this.profile.runMs += now() - t0;
    }
  }
}

/**
 * One token sequence on a LlamaModel, with its own KV cache. `prefill(embeds)` appends rows
 * (prompt embeddings, e.g. fused text with vision tokens) and returns the next-token logits;
 * `step(id)` appends one generated token. Calls on one sequence must not overlap (a generation
 * drives it); calls on different sequences may.
 */
export class Sequence {
  private busy = false;
  private disposed = false;

  constructor(
    readonly model: LlamaModel,
    private readonly cache: KvCache,
  ) {}

  /** Positions in this sequence's KV cache (0 after release() or an eviction). */
  get length(): number {
    return this.cache.length;
  }

  /** Bytes this sequence's KV cache takes now. */
  get cacheBytes(): number {
    return this.cache.bytes;
  }

  /** Times the model's KV cap evicted this sequence while it was idle. */
  get evictions(): number {
    return this.cache.evictions;
  }

  /**
   * Append rows, embeddings [1, S, H] or token ids, and return the logits [vocab] after the last row.
   * Long inputs run in chunks of the model's `prefillChunk`; the signal is checked between chunks.
   */
  async prefill(input: Tensor | readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    const ids = Array.isArray(input) ? this.model.tokenIds(input as readonly number[]) : undefined;
    const embeds = ids ? undefined : (input as Tensor);
    const S = ids ? this.checkLength(ids.length) : this.checkEmbeds(embeds as Tensor);
    const H = this.model.config.hiddenSize;
    const chunk = this.model.prefillChunk;
    return this.exclusive(async () => {
      this.model.settle(this.cache);
      let logits: Float32Array | undefined;
      for (let start = 0; start < S; start += chunk) {
        if (signal?.aborted) throw new AbortError('prefill was aborted');
        const n = Math.min(chunk, S - start);
        let part: Tensor | BigInt64Array;
        if (ids) part = ids.subarray(start, start + n);
        else part = n === S ? (embeds as Tensor) : tensor((embeds as Tensor).dtype, [1, n, H], (embeds as Tensor).data.subarray(start * H, (start + n) * H) as never);
        logits = await this.model.forward(this.cache, part, n);
      }
      return logits as Float32Array;
    });
  }

  /**
   * Append one generated token and return the next logits [vocab]: one decoder run, shared with
   * the other sequences of the model stepping at the same time.
   */
  async step(id: number): Promise<Float32Array> {
    const ids = this.model.tokenIds([id]);
    this.checkLength(1);
    return this.exclusive(() => this.model.decode(this.cache, ids));
  }

  /** Keep only the first `length` positions (roll a conversation back). */
  truncate(length: number): void {
    this.model.settle(this.cache);
    this.cache.truncate(length);
  }

  /** Empty the sequence and free its cache buffers now (it stays usable). */
  release(): void {
    this.model.settle(this.cache, false);
    this.cache.release();
  }

  /** Free the cache for good; the sequence cannot run again. */
  dispose(): void {
    this.disposed = true;
    this.model.settle(this.cache, false);
    this.cache.dispose();
  }

  /** Protect the cache from eviction while a generation runs; returns the release. */
  hold(): () => void {
    this.cache.holds++;
    let held = true;
    return () => {
      if (held) {
        this.cache.holds--;
        // The generation is over: its rows leave the decode arena for the sequence's own cache.
        if (!this.busy) this.model.settle(this.cache);
      }
      held = false;
    };
  }

  private async exclusive<T>(job: () => Promise<T>): Promise<T> {
    if (this.disposed) throw new DisposedError('the sequence');
    if (this.busy) throw new InvalidOptionError('this sequence is already running; calls on one sequence must not overlap (use one sequence per conversation)');
    this.busy = true;
    this.cache.holds++;
    try {
      return await job();
    } finally {
      this.cache.holds--;
      this.busy = false;
    }
  }

  private checkEmbeds(embeds: Tensor): number {
    const H = this.model.config.hiddenSize;
    if (embeds.dtype !== this.model.dtype) throw new InvalidOptionError(`embeddings are ${embeds.dtype}, the model runs in ${this.model.dtype}`);
    const [B, S, W] = embeds.dims;
    if (embeds.dims.length !== 3 || B !== 1 || W !== H || S === 0) {
      throw new InvalidOptionError(`embeddings must have shape [1, S >= 1, ${H}], got [${embeds.dims.join(', ')}]`);
    }
    return this.checkLength(S);
  }

  private checkLength(S: number): number {
    if (S === 0) throw new InvalidOptionError('prefill() needs at least one row');
    if (S > this.cache.free) {
      throw new PromptTooLongError(this.cache.length + S, this.model.maxSequence, `${this.cache.length} cached + ${S} new positions`);
    }
    return S;
  }
}
