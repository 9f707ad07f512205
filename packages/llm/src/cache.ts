import { type Tensor, tensor } from '@llava-mini/core';
import type { LlamaConfig } from './config.js';
import { LLAMA_IO } from './graph.js';

/** Capacity grows in steps of at least this many positions (and at least doubles). */
const GROWTH = 256;

/**
 * The KV cache: per layer one key and one value buffer [1, kvHeads, capacity, headDim], shared
 * between the graph's past inputs and present outputs, so GroupQueryAttention writes only the new
 * rows, in place. `length` counts the positions filled.
 *
 * The capacity follows the length (doubling, up to maxSequence) instead of starting at
 * maxSequence, because both JS runtimes copy whole cache buffers on every run: onnxruntime-node
 * copies each fetched output into a new ArrayBuffer (preallocated or not), onnxruntime-web copies
 * inputs into the WASM heap and outputs back. A buffer sized to the context keeps that cost in
 * proportion to the context, like attention itself, rather than to the longest context allowed.
 */
export class KvCache {
  private tensors: Tensor[] | undefined; // [layer0 key, layer0 value, layer1 key, ...]
  private capacity = 0;
  private filled = 0;

  constructor(
    private readonly config: LlamaConfig,
    readonly maxSequence: number,
    readonly dtype: 'float32' | 'float16',
    /**
     * false for runtimes whose GroupQueryAttention appends to the past instead of writing into a
     * shared buffer (onnxruntime-web's WebGPU kernels: present = past rows + new rows). The cache then
     * holds exactly the filled rows: each run's present outputs become the next run's past.
     */
    readonly inPlace = true,
  ) {}

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
    const c = this.config;
    return 2 * c.numLayers * c.numKvHeads * this.capacity * c.headDim * (this.dtype === 'float32' ? 4 : 2);
  }

  /**
   * Feeds and fetches of a run that adds `n` positions: the same tensor is past input and present
   * output; without `inPlace`, the present outputs are fetched by name and handed to advance().
   */
  buffers(n: number): { past: Record<string, Tensor>; present: Record<string, Tensor> | string[] } {
    if (!this.inPlace) {
      this.tensors ??= this.empty(0);
      const past: Record<string, Tensor> = {};
      for (let l = 0; l < this.config.numLayers; l++) {
        past[LLAMA_IO.pastKey(l)] = this.tensors[2 * l];
        past[LLAMA_IO.pastValue(l)] = this.tensors[2 * l + 1];
      }
      return { past, present: this.presentNames() };
    }
    this.reserve(this.filled + n);
    const t = this.tensors as Tensor[];
    const past: Record<string, Tensor> = {};
    const present: Record<string, Tensor> = {};
    for (let l = 0; l < this.config.numLayers; l++) {
      past[LLAMA_IO.pastKey(l)] = present[LLAMA_IO.presentKey(l)] = t[2 * l];
      past[LLAMA_IO.pastValue(l)] = present[LLAMA_IO.presentValue(l)] = t[2 * l + 1];
    }
    return { past, present };
  }

  /** Record that `n` more positions were written (`outputs`: the run's present tensors, when not in place). */
  advance(n: number, outputs?: Record<string, Tensor>): void {
    if (!this.inPlace) {
      const next = this.presentNames().map((name) => outputs?.[name]);
      const rows = this.filled + n;
      if (next.some((t) => !t || t.dims[2] !== rows)) throw new Error(`the LLM returned present tensors that do not hold ${rows} positions`);
      this.tensors = next as Tensor[];
      this.capacity = rows;
    }
    this.filled += n;
  }

  private presentNames(): string[] {
    return Array.from({ length: 2 * this.config.numLayers }, (_, i) => (i % 2 ? LLAMA_IO.presentValue(i >> 1) : LLAMA_IO.presentKey(i >> 1)));
  }

  /** Zero-filled buffers of `capacity` positions. */
  private empty(capacity: number): Tensor[] {
    const { numLayers, numKvHeads, headDim } = this.config;
    return Array.from({ length: 2 * numLayers }, () => tensor(this.dtype, [1, numKvHeads, capacity, headDim]));
  }

  /**
   * Forget everything after the first `length` positions (a conversation rolled back). Rows past
   * the length are never read: attention only looks at positions < total_sequence_length.
   */
  truncate(length: number): void {
    const keep = Math.max(0, Math.min(this.filled, length));
    if (!this.inPlace && this.tensors && keep < this.filled) {
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
    const { numKvHeads, headDim } = this.config;
    for (let h = 0; h < numKvHeads; h++) {
      const src = from.data.subarray(h * fromCap * headDim, (h * fromCap + rows) * headDim);
      (to.data as Float32Array).set(src as Float32Array, h * toCap * headDim);
    }
  }

  /** Drop the buffers (they are allocated again on the next run). */
  release(): void {
    this.tensors = undefined;
    this.capacity = 0;
    this.filled = 0;
  }

  /** Make room for `positions`, keeping the filled rows (a rare copy: capacity at least doubles). */
  private reserve(positions: number): void {
    if (positions <= this.capacity && this.tensors) return;
    const capacity = Math.min(this.maxSequence, Math.max(Math.ceil(positions / GROWTH) * GROWTH, 2 * this.capacity));
    const grown = this.empty(capacity);
    // [1, kvHeads, capacity, headDim]: each head's rows move to the head's new, longer span.
    if (this.tensors) grown.forEach((t, i) => this.copyRows((this.tensors as Tensor[])[i], this.capacity, t, capacity, this.filled));
    this.tensors = grown;
    this.capacity = capacity;
  }
}
