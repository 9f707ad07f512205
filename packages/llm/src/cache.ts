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

  /** Feeds and fetches of a run that adds `n` positions: the same tensor is past input and present output. */
  buffers(n: number): { past: Record<string, Tensor>; present: Record<string, Tensor> } {
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

  /** Record that `n` more positions were written. */
  advance(n: number): void {
    this.filled += n;
  }

  /**
   * Forget everything after the first `length` positions (a conversation rolled back). Rows past
   * the length are never read: attention only looks at positions < total_sequence_length.
   */
  truncate(length: number): void {
    this.filled = Math.max(0, Math.min(this.filled, length));
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
    const { numLayers, numKvHeads, headDim } = this.config;
    const grown: Tensor[] = [];
    for (let i = 0; i < 2 * numLayers; i++) {
      const t = tensor(this.dtype, [1, numKvHeads, capacity, headDim]);
      const old = this.tensors?.[i];
      if (old) {
        // [1, kvHeads, capacity, headDim]: each head's rows move to the head's new, longer span.
        for (let h = 0; h < numKvHeads; h++) {
          const rows = old.data.subarray(h * this.capacity * headDim, (h * this.capacity + this.filled) * headDim);
          (t.data as Float32Array).set(rows as Float32Array, h * capacity * headDim);
        }
      }
      grown.push(t);
    }
    this.tensors = grown;
    this.capacity = capacity;
  }
}
