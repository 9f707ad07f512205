import type { DeviceTensor, DType, Tensor } from './tensor.js';

/** Devices of onnxruntime-node. */
export type NodeDevice = 'cpu' | 'cuda' | 'webgpu';
/** Devices of onnxruntime-web. */
export type WebDevice = 'wasm' | 'webgpu';
export type Device = NodeDevice | WebDevice;
/** 'auto' picks the fastest device that works here and logs what it passed over. */
export type DeviceRequest = Device | 'auto';

export interface DeviceStatus {
  device: Device;
  available: boolean;
  /** The onnxruntime execution provider behind the device. */
  executionProvider: string;
  /** Why it is not available (absent when it is). */
  reason?: string;
  /** What to install or change to make it available. */
  hint?: string;
}

/** An external-data file a model refers to: its location as written in the model, and its bytes or URL/path. */
export interface ExternalDataFile {
  path: string;
  data: Uint8Array | string;
}

/**
 * A model to load: serialized bytes, or a path (Node) / URL (browser) of an .onnx file. Weights
 * stored as external data are found beside a path or URL; with bytes, pass them in `externalData`.
 */
export type ModelSource = Uint8Array | string | { model: Uint8Array | string; externalData?: ExternalDataFile[] };

export interface SessionOptions {
  device?: DeviceRequest;
  /** Receives fallback notices for `device: 'auto'` (default: console.warn). */
  logger?: (message: string) => void;
  /** CPU threads inside one operator (default: onnxruntime's choice). */
  intraOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * The caller never runs more query rows in one call than capabilities.attentionQueryLimit (the
   * LLM chunks its prompt), so attention nodes may stay on the device where there is such a limit;
   * otherwise they are placed on the CPU there.
   */
  chunksAttention?: boolean;
  /**
   * Outputs that may stay in the device's memory where it has its own (onnxruntime-web's WebGPU):
   * a run with `keepOnDevice` returns them as DeviceTensor, to be fed back into later runs without
   * crossing to the host. Elsewhere they come back as host tensors like any output.
   */
  deviceOutputs?: readonly string[];
}

/**
 * Outputs to fetch: names (the runtime allocates them), or preallocated tensors keyed by name, which
 * the runtime writes into (used for KV caches shared between past and present).
 */
export type Fetches = readonly string[] | Record<string, Tensor>;

/** A graph input or output as the session reports it: symbolic dimensions are names (e.g. 'sequence'). */
export interface ValueInfo {
  name: string;
  dtype: DType;
  dims: readonly (number | string)[];
}

/**
 * Bytes that crossed the JavaScript boundary in a session's runs, so a caller can see (and a test
 * can assert) what a run moves.
 */
export interface RunTraffic {
  /** Bytes of the outputs the runtime handed back: onnxruntime-node's binding copies every fetched output into a new buffer, preallocated or not. */
  fetchedBytes: number;
  /** Bytes JavaScript copied into preallocated outputs, for a runtime that does not write them (onnxruntime-web's WASM). */
  copiedBytes: number;
  /** Bytes of host tensors fed to a device with its own memory (WebGPU): what crossed to the GPU. */
  uploadedBytes: number;
  /** Bytes of device outputs copied back to the host (a run without keepOnDevice downloads them). */
  downloadedBytes: number;
}

/**
 * What one runtime on one device can and cannot do, where callers must adapt to it (the LLM's KV
 * cache and prompt chunking do). Gathered here so a quirk has one name and one place.
 */
export interface RuntimeCapabilities {
  /**
   * The most query rows one attention call runs correctly with (onnxruntime-node's WebGPU provider
   * is wrong past a few dozen); callers split longer prompts. Infinity where there is no limit.
   */
  readonly attentionQueryLimit: number;
  /**
   * GroupQueryAttention writes new rows into a past buffer passed again as its present output.
   * false where it returns past + new rows instead (onnxruntime-web's WebGPU).
   */
  readonly kvCacheInPlace: boolean;
  /**
   * The device has memory of its own that outputs can stay in between runs
   * (SessionOptions.deviceOutputs, fetched with `run(..., { keepOnDevice: true })`).
   */
  readonly deviceMemory: boolean;
  /**
   * The runtime writes outputs into caller-provided host tensors (onnxruntime-node does); elsewhere
   * the session copies each result into them (counted in RunTraffic.copiedBytes).
   */
  readonly preallocatedOutputs: boolean;
  /**
   * GroupQueryAttention is the faster kernel for a prompt's many rows (the LLM's prompt kernel).
   * true only where measured so: onnxruntime-node's CPU (1.7x on a 4,096-token prompt). On
   * onnxruntime-web's WASM it is the slower one (0.47x); WebGPU and CUDA are not measured.
   * bench/RESULTS.md, "Long contexts".
   */
  readonly promptAttention: boolean;
}

export interface RunOptions {
  /**
   * Leave the outputs named in SessionOptions.deviceOutputs in device memory, as DeviceTensors to
   * feed into later runs. Without it (or on a device without its own memory) every output comes to
   * the host.
   */
  keepOnDevice?: boolean;
}

/**
 * One loaded graph. Runs of all sessions of one backend are queued and run one at a time, in order
 * (onnxruntime-web refuses overlapping runs; on onnxruntime-node a run blocks the thread anyway),
 * so any number of callers may call run() at once.
 */
export interface InferenceSession {
  readonly device: Device;
  readonly executionProvider: string;
  /** Inputs and outputs with their dtype and shape, from the graph (so callers need not store them). */
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly capabilities: RuntimeCapabilities;
  /** Running totals over this session's runs. */
  readonly traffic: RunTraffic;
  /** Run. Feeds may be DeviceTensors of this session's backend; outputs come to the host unless kept (RunOptions). */
  run(feeds: Record<string, Tensor | DeviceTensor>, fetches?: Fetches): Promise<Record<string, Tensor>>;
  run(feeds: Record<string, Tensor | DeviceTensor>, fetches: Fetches | undefined, options: RunOptions): Promise<Record<string, Tensor | DeviceTensor>>;
  dispose(): Promise<void>;
}

/** Whether a session's graph has an input (or output) of this name. */
export function hasInput(session: Pick<InferenceSession, 'inputs'>, name: string): boolean {
  return session.inputs.some((v) => v.name === name);
}
export function hasOutput(session: Pick<InferenceSession, 'outputs'>, name: string): boolean {
  return session.outputs.some((v) => v.name === name);
}

/** One runtime (onnxruntime-node or onnxruntime-web) behind the interface every stage uses. */
export interface Backend {
  readonly name: 'onnxruntime-node' | 'onnxruntime-web';
  /** The devices this backend knows, fastest first: the order `auto` tries. */
  readonly devices: readonly Device[];
  /** Which devices work on this machine (each probed once by loading and running a tiny model). */
  probe(): Promise<DeviceStatus[]>;
  /** Resolve a request ('auto' or a device) to a device that works, or throw DeviceUnavailableError. */
  resolveDevice(request?: DeviceRequest, logger?: (message: string) => void): Promise<Device>;
  createSession(source: ModelSource, options?: SessionOptions): Promise<InferenceSession>;
}

/** Where a stage reads checkpoint tensors from (a `Checkpoint` in Node, or anything with the same shape). */
export interface WeightSource {
  has(name: string): boolean;
  /** Reads the tensor in its stored dtype. */
  read(name: string): Tensor;
}
