/**
 * Progress of long work (conversion, loading, video decoding). Libraries emit these; the CLI draws
 * them as bars. `total` is absent when the amount of work is not known up front.
 */
export interface ProgressEvent {
  /** What is being done, e.g. 'convert', 'load', 'decode-video'. */
  task: string;
  /** The item in progress, e.g. a tensor or file name. */
  item?: string;
  done: number;
  total?: number;
  unit?: 'bytes' | 'tensors' | 'frames' | 'files' | 'tokens' | 'jobs';
}

export type ProgressCallback = (event: ProgressEvent) => void;
