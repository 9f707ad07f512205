import { type Tensor, tensor } from '@llava-mini/core';
import type { LlamaConfig } from './config.js';
import { LLAMA_IO } from './graph.js';

/**
 * The KV cache: per layer one key and one value buffer [1, kvHeads, maxSequence, headDim], allocated
 * once and shared between the graph's past inputs and present outputs, so a step writes only its own
 * rows (onnxruntime-node binds the buffers in place). `length` counts the positions filled so far.
 */
export class KvCache {
  private tensors: Record<string, Tensor> | undefined;
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

  /** Bytes the buffers take once allocated. */
  get bytes(): number {
    const c = this.config;
    return 2 * c.numLayers * c.numKvHeads * this.maxSequence * c.headDim * (this.dtype === 'float32' ? 4 : 2);
  }

  /** Feeds and fetches of one run: the same tensor serves as past input and present output. */
  buffers(): { past: Record<string, Tensor>; present: Record<string, Tensor> } {
    this.tensors ??= this.allocate();
    const past: Record<string, Tensor> = {};
    const present: Record<string, Tensor> = {};
    for (let l = 0; l < this.config.numLayers; l++) {
      past[LLAMA_IO.pastKey(l)] = this.tensors[LLAMA_IO.pastKey(l)];
      past[LLAMA_IO.pastValue(l)] = this.tensors[LLAMA_IO.pastValue(l)];
      present[LLAMA_IO.presentKey(l)] = this.tensors[LLAMA_IO.pastKey(l)];
      present[LLAMA_IO.presentValue(l)] = this.tensors[LLAMA_IO.pastValue(l)];
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
    this.filled = 0;
  }

  private allocate(): Record<string, Tensor> {
    const c = this.config;
    const dims = [1, c.numKvHeads, this.maxSequence, c.headDim];
    const out: Record<string, Tensor> = {};
    for (let l = 0; l < c.numLayers; l++) {
      out[LLAMA_IO.pastKey(l)] = tensor(this.dtype, dims);
      out[LLAMA_IO.pastValue(l)] = tensor(this.dtype, dims);
    }
    return out;
  }
}
