import {
  AbortError,
  type Backend,
  type Device,
  type DeviceRequest,
  type InferenceSession,
  InvalidOptionError,
  type ModelSource,
  PromptTooLongError,
  type SessionOptions,
  type Tensor,
  tensor,
} from '@llava-mini/core';
import { KvCache } from './cache.js';
import type { LlamaConfig } from './config.js';
import { LLAMA_IO } from './graph.js';

/** The two graphs of a backbone: the decoder (buildLlamaGraph) and the token embeddings (buildEmbeddingsGraph). */
export interface LlamaModelFiles {
  model: ModelSource;
  embeddings: ModelSource;
}

export interface LlamaModelOptions {
  config: LlamaConfig;
  device?: DeviceRequest;
  /**
   * The context window in positions. Default min(max_position_embeddings, 4096). At most the
   * graph's `maxPositions` (its RoPE table rows; buildLlamaGraph's default is max_position_embeddings).
   */
  maxSequence?: number;
  /** The float dtype the graphs were built with (their I/O dtype). Default 'float32'. */
  dtype?: 'float32' | 'float16';
  /**
   * Longest slice of a prompt run at once. onnxruntime's CPU attention keeps a heads x chunk x
   * maxSequence score buffer, so chunking bounds prefill memory. Default 512.
   */
  prefillChunk?: number;
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

/**
 * A LLaMA backbone with its KV cache. `prefill(embeds)` appends rows (prompt embeddings, e.g. fused
 * text with vision tokens) and returns the next-token logits; `step(id)` appends one generated token.
 * One sequence at a time (batch 1); calls must not overlap.
 */
export class LlamaModel {
  readonly profile: RunProfile = { runs: 0, runMs: 0 };
  private readonly cache: KvCache;
  private busy = false;

  private constructor(
    readonly config: LlamaConfig,
    private readonly session: InferenceSession,
    private readonly embedSession: InferenceSession,
    readonly maxSequence: number,
    readonly dtype: 'float32' | 'float16',
    readonly prefillChunk: number,
  ) {
    this.cache = new KvCache(config, maxSequence, dtype, session.kvCacheInPlace !== false);
  }

  static async create(backend: Backend, files: LlamaModelFiles, options: LlamaModelOptions): Promise<LlamaModel> {
    const c = options.config;
    const maxSequence = positiveInt('maxSequence', options.maxSequence ?? Math.min(c.maxPositionEmbeddings, 4096));
    if (maxSequence > c.maxPositionEmbeddings) {
      throw new InvalidOptionError(`maxSequence ${maxSequence} exceeds the model's max_position_embeddings ${c.maxPositionEmbeddings}`);
    }
    const dtype = options.dtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'float16') throw new InvalidOptionError(`dtype must be 'float32' or 'float16', got ${String(dtype)}`);
    const prefillChunk = positiveInt('prefillChunk', options.prefillChunk ?? 512);
    const sessionOptions = { ...options.session, device: options.device ?? 'auto' };
    // The decoder honours the session's attentionQueryLimit (prefill chunks below), so its attention stays on the device.
    const session = await backend.createSession(files.model, { ...sessionOptions, chunksAttention: true });
    let embedSession: InferenceSession;
    try {
      embedSession = await backend.createSession(files.embeddings, { ...sessionOptions, device: session.device });
    } catch (err) {
      await session.dispose();
      throw err;
    }
    // A runtime whose attention is wrong past some query length (onnxruntime-node's WebGPU) gets shorter chunks.
    const chunk = Math.min(prefillChunk, session.attentionQueryLimit ?? Infinity);
    return new LlamaModel(c, session, embedSession, maxSequence, dtype, chunk);
  }

  get device(): Device {
    return this.session.device;
  }

  /** Positions in the KV cache (prompt and generated tokens so far). */
  get length(): number {
    return this.cache.length;
  }

  /** Bytes the KV cache takes now (its capacity follows the context, up to maxSequence). */
  get cacheBytes(): number {
    return this.cache.bytes;
  }

  /** Token embeddings [1, S, H] for ids in [0, vocab). */
  async embed(ids: ArrayLike<number>): Promise<Tensor> {
    if (ids.length === 0) throw new InvalidOptionError('embed() needs at least one token id');
    const data = new BigInt64Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
        throw new InvalidOptionError(`token id ${id} at index ${i} is outside the vocabulary [0, ${this.config.vocabSize}) (image placeholders are replaced by the pipeline)`);
      }
      data[i] = BigInt(id);
    }
    const out = await this.run(this.embedSession, { [LLAMA_IO.inputIds]: tensor('int64', [1, ids.length], data) }, [LLAMA_IO.inputsEmbeds]);
    return out[LLAMA_IO.inputsEmbeds];
  }

  /**
   * Append rows [1, S, H] to the sequence and return the logits [vocab] after the last row. Long
   * inputs run in chunks of `prefillChunk`; the signal is checked between chunks.
   */
  async prefill(embeds: Tensor, signal?: AbortSignal): Promise<Float32Array> {
    const S = this.checkEmbeds(embeds);
    const H = this.config.hiddenSize;
    let logits: Float32Array | undefined;
    for (let start = 0; start < S; start += this.prefillChunk) {
      if (signal?.aborted) throw new AbortError('prefill was aborted');
      const n = Math.min(this.prefillChunk, S - start);
      const chunk = n === S ? embeds : tensor(embeds.dtype, [1, n, H], embeds.data.subarray(start * H, (start + n) * H) as never);
      logits = await this.forward(chunk, n);
    }
    return logits as Float32Array;
  }

  /** Append one generated token and return the next logits [vocab]. */
  async step(id: number): Promise<Float32Array> {
    return this.prefill(await this.embed([id]));
  }

  /** Keep only the first `length` positions (roll a conversation back). */
  truncate(length: number): void {
    this.cache.truncate(length);
  }

  /** Start a new sequence (the cache buffers stay allocated). */
  reset(): void {
    this.cache.truncate(0);
  }

  /** Start a new sequence and free the cache buffers. */
  release(): void {
    this.cache.release();
  }

  async dispose(): Promise<void> {
    this.cache.release();
    await Promise.all([this.session.dispose(), this.embedSession.dispose()]);
  }

  private checkEmbeds(embeds: Tensor): number {
    const H = this.config.hiddenSize;
    if (embeds.dtype !== this.dtype) throw new InvalidOptionError(`embeddings are ${embeds.dtype}, the model runs in ${this.dtype}`);
    const [B, S, W] = embeds.dims;
    if (embeds.dims.length !== 3 || B !== 1 || W !== H || S === 0) {
      throw new InvalidOptionError(`embeddings must have shape [1, S >= 1, ${H}], got [${embeds.dims.join(', ')}]`);
    }
    if (S > this.cache.free) {
      throw new PromptTooLongError(this.cache.length + S, this.maxSequence, `${this.cache.length} cached + ${S} new positions`);
    }
    return S;
  }

  private async forward(embeds: Tensor, n: number): Promise<Float32Array> {
    const total = this.cache.length + n;
    const { past, present } = this.cache.buffers(n);
    const feeds = {
      [LLAMA_IO.inputsEmbeds]: embeds,
      [LLAMA_IO.seqlensK]: tensor('int32', [1], Int32Array.of(total - 1)),
      [LLAMA_IO.totalSequenceLength]: tensor('int32', [], Int32Array.of(total)),
      ...past,
    };
    const fetches = Array.isArray(present) ? [LLAMA_IO.logits, ...present] : { [LLAMA_IO.logits]: tensor('float32', [1, this.config.vocabSize]), ...present };
    const out = await this.run(this.session, feeds, fetches);
    this.cache.advance(n, out);
    return out[LLAMA_IO.logits].data as Float32Array;
  }

  private async run(session: InferenceSession, feeds: Record<string, Tensor>, fetches: readonly string[] | Record<string, Tensor>): Promise<Record<string, Tensor>> {
    if (this.busy) throw new InvalidOptionError('the model is already running; calls on one LlamaModel must not overlap');
    this.busy = true;
    const t0 = now();
    try {
      return await session.run(feeds, fetches);
    } finally {
      this.profile.runs++;
      this.profile.runMs += now() - t0;
      this.busy = false;
    }
  }
}
