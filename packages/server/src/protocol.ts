// Messages between the HTTP thread and its worker threads.
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
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'load-error'; error: SerializedError }
  | { type: 'log'; message: string }
  | { type: 'chunk'; id: number; chunk: ChatCompletionChunk }
  | { type: 'done'; id: number; completion?: ChatCompletion }
  | { type: 'error'; id: number; error: SerializedError };
