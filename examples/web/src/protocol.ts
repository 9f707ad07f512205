// Messages between the page (main.ts) and the model's Web Worker (worker.ts).

/** What the page sends. */
export type ToWorker =
  | { type: 'load'; baseUrl: string; device: 'auto' | 'webgpu' | 'wasm' }
  | { type: 'picture'; picture: Picture }
  /** newConversation: ask about the picture afresh, without the earlier turns (the picture's features are kept either way). */
  | { type: 'ask'; question: string; maxNewTokens: number; newConversation: boolean }
  | { type: 'stop' }
  | { type: 'clear-cache' }
  /** Live mode: a new live stream (the picture's conversation ends); questions are then about its window. */
  | { type: 'live-start'; windowSeconds: number }
  /** A frame of the live source, drawn by the page (a worker has no MediaStream to read). */
  | { type: 'live-frame'; frame: LiveFrame }
  | { type: 'live-stop' };

/** RGB pixels drawn from a MediaStream, with the seconds since the stream's first frame. */
export interface LiveFrame {
  width: number;
  height: number;
  data: Uint8Array;
  time: number;
}

/** The frames a live question saw: how many, and the stream times (seconds) of the first and the last. */
export interface LiveWindowInfo {
  frames: number;
  from: number;
  to: number;
}

/** An image file, or a short video's frames drawn by the page (a worker has no <video>). */
export type Picture = { kind: 'image'; blob: Blob; name: string } | { kind: 'video'; frames: ImageBitmap[]; name: string };

/** A model scripts/prepare-models.mjs lists in models/index.json, with what the page says about it. */
export interface ModelEntry {
  name: string;
  url: string;
  trained: boolean;
  /** One line on what the model is and what it can answer. */
  about?: string;
  /** Questions it was trained to answer, offered as one-click suggestions (the first fills the box). */
  questions?: string[];
  /** A picture of its world, offered by a button. */
  sample?: string;
  /** A short video of its world (examples/assets/shapes.mp4 for the demo model), offered by a button. */
  sampleClip?: string;
  /** Questions it answers about a video, offered instead of `questions` while the picture is a video. */
  clipQuestions?: string[];
  /** Trained on one question per picture: follow-ups start a new conversation by default. */
  singleTurn?: boolean;
}

/** Why the worker runs where it runs, for the page to say. */
export interface DeviceChoice {
  device: 'webgpu' | 'wasm';
  /** fp16 model files (WebGPU with shader-f16) or fp32. */
  dtype: 'fp16' | 'fp32';
  reason: string;
}

export interface FileProgress {
  name: string;
  done: number;
  total: number;
  cached: boolean;
}

/** What the worker sends back. */
export type FromWorker =
  | { type: 'device'; choice: DeviceChoice }
  | { type: 'progress'; files: FileProgress[]; note?: string }
  | { type: 'loaded'; modelName: string; loadMs: number; cache: string }
  | { type: 'load-failed'; message: string; retry: boolean }
  | { type: 'token'; text: string }
  | { type: 'answer'; text: string; stopped: boolean; timeToFirstTokenMs: number; tokensPerSecond: number; tokens: number; encoderRuns: number; picturesEncoded: boolean; window?: LiveWindowInfo; ids?: number[]; logprobs?: number[] }
  /** A live frame entered the window (`time`, as the page sent it): the window now, frames received, dropped (the encoder was busy) and encoded. */
  | { type: 'live-stats'; time: number; window: LiveWindowInfo & { bytes: number }; received: number; dropped: number; encoded: number }
  | { type: 'error'; message: string }
  | { type: 'cache-cleared'; freedBytes: number };
