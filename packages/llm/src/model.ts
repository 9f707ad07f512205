import {
  type Backend,
  type Device,
  type DeviceTensor,
  type DeviceRequest,
  DisposedError,
  type Fetches,
  hasInput,
  type InferenceSession,
  InvalidOptionError,
  type ModelSource,
  now,
  type RunOptions,
  type RunTraffic,
  type SessionOptions,
  SessionError,
  type Tensor,
  tensor,
} from '@llava-mini/core';
import { PROMPT_KERNEL_MIN_ROWS } from './attention.js';
import type { LlamaConfig } from './config.js';
import { LLAMA_IO } from './io.js';
import { type BatchStats, type Decoder, type KvLayout, KvPool, kvLayout, type KvStrategy, kvStrategy } from './kv/index.js';
import { LlamaSequence, type Sequence, tokenIds } from './sequence.js';

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
  /**
   * The fewest rows of a run that take the graph's prompt kernel (GroupQueryAttention); Infinity:
   * none. Default: PROMPT_KERNEL_MIN_ROWS where the runtime's is the faster kernel
   * (`capabilities.promptAttention`), else Infinity. The benches set it to compare the kernels.
   */
  promptKernelMinRows?: number;
  /** Passed to both sessions (threads, optimization level). */
  session?: Omit<SessionOptions, 'device'>;
}

/** Time spent inside onnxruntime, for telling runtime cost from JavaScript overhead. */
export interface RunProfile {
  runs: number;
  runMs: number;
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new InvalidOptionError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** The option, checked; by default PROMPT_KERNEL_MIN_ROWS where the runtime's GroupQueryAttention is the faster kernel, else Infinity (no run takes it). */
function promptKernelMinRows(given: number | undefined, session: InferenceSession): number {
  if (given === undefined) return session.capabilities.promptAttention ? PROMPT_KERNEL_MIN_ROWS : Infinity;
  return given === Infinity ? given : positiveInt('promptKernelMinRows', given);
}

/**
 * A loaded LLaMA backbone: the decoder and token-embedding sessions, and nothing that belongs to
 * a conversation. Each sequence (`model.sequence()`) owns its KV cache, made by the strategy for
 * the decoder's cache layout (kv/); any number of them may run at once (their runs are queued by
 * the backend, one at a time, in order). The dtype and cache layout are read from the decoder
 * session's inputs.
 */
export class LlamaModel {
  readonly profile: RunProfile = { runs: 0, runMs: 0 };
  readonly kv: KvLayout;
  private readonly pool: KvPool;
  private readonly strategy: KvStrategy;
  private embedSession: Promise<InferenceSession> | undefined;
  private disposed = false;

  private constructor(
    readonly config: LlamaConfig,
    private readonly session: InferenceSession,
    private readonly embeddings: (() => Promise<InferenceSession>) | undefined,
    readonly maxSequence: number,
    readonly prefillChunk: number,
    kvCacheBytes: number,
    promptKernelMinRows: number,
  ) {
    this.kv = kvLayout(session);
    if (!hasInput(session, LLAMA_IO.inputIds)) {
      throw new SessionError(`the decoder graph has no ${LLAMA_IO.inputIds} input (made before token embeddings moved into it): convert the model again`);
    }
    this.pool = new KvPool(kvCacheBytes);
    // Graphs converted before the prompt kernel have no such input (nor kernel).
    const minRows = BigInt(Math.min(promptKernelMinRows, Number.MAX_SAFE_INTEGER));
    const minRowsFeed: Record<string, Tensor> = hasInput(session, LLAMA_IO.promptKernelMinRows) ? { [LLAMA_IO.promptKernelMinRows]: tensor('int64', [1], BigInt64Array.of(minRows)) } : {};
    const decoder: Decoder = {
      layout: this.kv,
      hiddenSize: config.hiddenSize,
      vocabSize: config.vocabSize,
      maxSequence,
      run: (feeds, fetches, options) => this.run(this.session, { ...feeds, ...minRowsFeed }, fetches, options),
    };
    this.strategy = kvStrategy(decoder);
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
    // The decoder honours the runtime's attention query limit (prefill chunks below), so its
    // attention stays on the device. Present outputs may stay in GPU memory and come back as the
    // next run's past ('append' mode on onnxruntime-web's WebGPU): the cache never crosses to the
    // host between steps.
    const presents = Array.from({ length: c.numLayers }, (_, l) => [LLAMA_IO.presentKey(l), LLAMA_IO.presentValue(l)]).flat();
    const session = await backend.createSession(files.model, { ...sessionOptions, chunksAttention: true, deviceOutputs: presents });
    const { embeddings } = files;
    const loadEmbeddings = embeddings === undefined ? undefined : () => backend.createSession(embeddings, { ...sessionOptions, device: session.device });
    const chunk = Math.min(prefillChunk, session.capabilities.attentionQueryLimit);
    try {
      return new LlamaModel(c, session, loadEmbeddings, maxSequence, chunk, kvCacheBytes, promptKernelMinRows(options.promptKernelMinRows, session));
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
   * Bytes all sequences' KV caches take now, with what the cache strategy shares between them
   * (the decode arena of sequences decoding together, which exists only while they do and is not
   * counted against kvCacheBytes).
   */
  get cacheBytes(): number {
    return this.pool.bytes + this.strategy.sharedBytes;
  }

  /** The cap on the sequences' own caches. */
  get cacheLimitBytes(): number {
    return this.pool.limitBytes;
  }

  /** Decode runs, the sequence steps they carried (steps / runs: the mean batch) and the sequences' moves into the batch, where steps are batched. */
  get batchStats(): BatchStats | undefined {
    return this.strategy.batchStats;
  }

  /** A new, empty sequence with its own KV cache (freed by its dispose()). */
  sequence(): Sequence {
    if (this.disposed) throw new DisposedError('the model');
    return new LlamaSequence(this, this.strategy.open(this.pool));
  }

  /**
   * Token embeddings [1, S, H] for ids in [0, vocab), from the embeddings graph (loaded on the first
   * call). Only callers that need embeddings before the decoder runs need it (the pipeline's
   * pre-fusion): prefill() and step() take ids themselves.
   */
  async embed(ids: ArrayLike<number>): Promise<Tensor> {
    if (ids.length === 0) throw new InvalidOptionError('embed() needs at least one token id');
    if (!this.embeddings) throw new InvalidOptionError('embed() needs the embeddings graph (LlamaModelFiles.embeddings); prefill() and step() take token ids without it');
    const data = tokenIds(ids, this.config.vocabSize);
    this.embedSession ??= this.embeddings();
    const out = await this.run(await this.embedSession, { [LLAMA_IO.inputIds]: tensor('int64', [1, ids.length], data) }, [LLAMA_IO.inputsEmbeds]);
    return out[LLAMA_IO.inputsEmbeds] as Tensor;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    const embed = this.embedSession?.catch(() => undefined);
    await Promise.all([this.session.dispose(), embed?.then((s) => s?.dispose())]);
  }

  /** One run of a session, counted in `profile`. */
  private async run(session: InferenceSession, feeds: Record<string, Tensor | DeviceTensor>, fetches: Fetches, options: RunOptions = {}): Promise<Record<string, Tensor | DeviceTensor>> {
    if (this.disposed) throw new DisposedError('the model');
    const t0 = now();
    try {
      return await session.run(feeds, fetches, options);
    } finally {
      this.profile.runs++;
      this.profile.runMs += now() - t0;
    }
  }
}
