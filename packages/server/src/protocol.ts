// Messages between the HTTP thread and its workers (threads, or processes: worker-handle.ts).
import type { ChatCompletion, ChatCompletionChunk } from '@llava-mini/pipeline';
import type { SerializedError } from './errors.js';

export interface WorkerInit {
  model: string;
  device: 'auto' | 'cpu' | 'cuda' | 'webgpu' | 'wasm';
  maxVideoFrames: number;
  maxImagePixels: number;
}

export type ToWorker =
  /** A checked request whose pictures are already decoded (`image` parts) or local video paths. */
  | { type: 'run'; id: number; body: Record<string, unknown> }
  | { type: 'cancel'; id: number }
  | { type: 'stats' }
  | { type: 'close' };

/** What a worker's model holds now, for /metrics. */
export interface WorkerStats {
  /** Bytes of all its conversations' KV caches. */
  kvBytes: number;
  /** Bytes and entries of its picture cache (pictures' pre-fusion prefixes, kept across requests up to its bound). */
  pictureBytes: number;
  pictureEntries: number;
  /** Requests it is running. */
  running: number;
  /** Bytes its JavaScript heap uses (the model's weights and caches are native memory, not counted). */
  heapBytes: number;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; error: SerializedError }
  | { type: 'log'; message: string }
  /** The worker hit an error outside any request and stops once its graphs are idle: fail its requests, replace it. */
  | { type: 'fatal'; error: SerializedError }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'chunk'; id: number; chunk: ChatCompletionChunk }
  | { type: 'done'; id: number; completion?: ChatCompletion }
  | { type: 'error'; id: number; error: SerializedError };
