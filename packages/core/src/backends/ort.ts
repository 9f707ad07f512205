import type {
  Backend,
  Device,
  DeviceRequest,
  DeviceStatus,
  Fetches,
  InferenceSession,
  ModelSource,
  RunOptions,
  RunTraffic,
  RuntimeCapabilities,
  SessionOptions,
  ValueInfo,
} from '../backend.js';
import { debugEnabled } from '../debug.js';
import { DeviceUnavailableError, errorMessage, InvalidOptionError, SessionError } from '../errors.js';
import { RunQueue } from '../queue.js';
import { type DeviceTensor, type DType, isDeviceTensor, type Tensor, tensor, type TensorData } from '../tensor.js';

/*
 * What this file needs of an onnxruntime JS package. onnxruntime-node and onnxruntime-web share the
 * onnxruntime-common API, so one implementation serves both; typing it structurally keeps the
 * runtimes out of the public type declarations.
 */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
  /** onnxruntime-web: 'gpu-buffer' for an output left on the GPU (preferredOutputLocation). */
  readonly location?: string;
  getData?(releaseData?: boolean): Promise<unknown>;
  dispose?(): void;
}
interface OrtValueMetadata {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
  readonly shape?: readonly (number | string)[];
}
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadata[];
  readonly outputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>, fetches?: readonly string[] | Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtModule {
  Tensor: new (type: string, data: TensorData, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array | string, options?: object): Promise<OrtSession> };
}

/** What a backend's runtime does on every device (onnxruntime-web's WASM path ignores preallocated outputs). */
export type OrtFeatures = Pick<RuntimeCapabilities, 'preallocatedOutputs'>;

/** One device of a backend: its execution provider, an optional cheap pre-check, and the fix to suggest. */
export interface DeviceSpec {
  device: Device;
  executionProvider: string;
  /** Returns a reason the device cannot work here, before trying onnxruntime (e.g. no navigator.gpu); gets the probe model. */
  precheck?: (probeModel: Uint8Array) => Promise<string | undefined>;
  /** The precheck already ran the probe model, so passing it means available. */
  precheckRunsProbe?: boolean;
  /** Execution-provider options for a session of this model (e.g. nodes to keep off a faulty kernel). */
  providerOptions?: (model: Uint8Array | string, options: SessionOptions) => Promise<Record<string, unknown>>;
  /** Where this device departs from the defaults (no query limit, in-place KV writes, host memory only). */
  capabilities?: Partial<Omit<RuntimeCapabilities, 'preallocatedOutputs'>>;
  /** Returns why a loaded graph cannot run right on this device (told whether its I/O is float16). */
  graphCheck?: (usesFloat16: boolean) => Promise<{ reason: string; hint: string } | undefined>;
  hint: string;
}

const ORT_OPT_LEVEL = { disabled: 'disabled', basic: 'basic', extended: 'extended', all: 'all' } as const;

/** First line of a native error, without onnxruntime's source-file prefix. */
function nativeReason(err: unknown): string {
  const line = errorMessage(err).split('\n')[0];
  return line.replace(/^\/\S+:\d+ /, '').trim();
}

export class OrtBackend implements Backend {
  readonly devices: readonly Device[];
  private readonly specs: Map<Device, DeviceSpec>;
  private probes = new Map<Device, Promise<DeviceStatus>>();
  /** Every session of this backend runs through one queue (see InferenceSession). */
  private readonly queue = new RunQueue();

  constructor(
    readonly name: 'onnxruntime-node' | 'onnxruntime-web',
    private readonly ort: OrtModule,
    specs: DeviceSpec[],
    /** Turns a source into what this runtime's create() can load (the web runtime needs external data listed). */
    private readonly features: OrtFeatures,
    private readonly prepare: (source: ModelSource) => Promise<ModelSource> = async (s) => s,
  ) {
    this.devices = specs.map((s) => s.device);
    this.specs = new Map(specs.map((s) => [s.device, s]));
  }

  probe(): Promise<DeviceStatus[]> {
    return Promise.all(this.devices.map((d) => this.probeDevice(d)));
  }

  /** `logger` hears why 'auto' passed a device over; without one that is said only under LLAVA_MINI_DEBUG. */
  async resolveDevice(request: DeviceRequest = 'auto', logger?: (m: string) => void): Promise<Device> {
    if (request !== 'auto') {
      const status = await this.probeDevice(this.spec(request).device);
      if (!status.available) throw new DeviceUnavailableError(request, status.reason ?? 'unknown', status.hint ?? '');
      return request;
    }
    const passed: string[] = [];
    for (const device of this.devices) {
      const status = await this.probeDevice(device);
      if (status.available) {
        const log = logger ?? (debugEnabled() ? console.warn : undefined);
        if (passed.length) log?.(`[llava-mini] device 'auto' uses '${device}' (${this.name}); not available: ${passed.join('; ')}`);
        return device;
      }
      passed.push(`${device}: ${status.reason}`);
    }
    throw new DeviceUnavailableError('auto', `no device of ${this.name} works here (${passed.join('; ')})`, '');
  }

  async createSession(source: ModelSource, options: SessionOptions = {}): Promise<InferenceSession> {
    const device = await this.resolveDevice(options.device ?? 'auto', options.logger);
    const spec = this.spec(device);
    const prepared = await this.prepare(source);
    const { model, externalData } = typeof prepared === 'string' || prepared instanceof Uint8Array ? { model: prepared, externalData: undefined } : prepared;
    const epOptions = spec.providerOptions ? await spec.providerOptions(model, options) : {};
    const provider = Object.keys(epOptions).length ? { name: spec.executionProvider, ...epOptions } : spec.executionProvider;
    const ortOptions: Record<string, unknown> = { executionProviders: [provider] };
    if (externalData) ortOptions.externalData = externalData;
    if (options.intraOpNumThreads !== undefined) ortOptions.intraOpNumThreads = options.intraOpNumThreads;
    if (options.graphOptimizationLevel) ortOptions.graphOptimizationLevel = ORT_OPT_LEVEL[options.graphOptimizationLevel];
    const capabilities: RuntimeCapabilities = { attentionQueryLimit: Infinity, kvCacheInPlace: true, deviceMemory: false, promptAttention: false, ...this.features, ...spec.capabilities };
    const deviceOutputs = new Set(capabilities.deviceMemory ? (options.deviceOutputs ?? []) : []);
    if (deviceOutputs.size) ortOptions.preferredOutputLocation = Object.fromEntries([...deviceOutputs].map((n) => [n, 'gpu-buffer']));
    let session: OrtSession;
    try {
      session = await this.ort.InferenceSession.create(model, ortOptions);
    } catch (err) {
      const what = typeof model === 'string' ? `model '${model}'` : 'the model';
      throw new SessionError(`${this.name} could not load ${what} on ${device}: ${nativeReason(err)}`, { cause: err });
    }
    const s = new OrtInferenceSession(this.ort, session, device, spec.executionProvider, capabilities, this.queue);
    const refused = await spec.graphCheck?.([...s.inputs, ...s.outputs].some((v) => v.dtype === 'float16'));
    if (refused) {
      await s.dispose();
      throw new DeviceUnavailableError(device, refused.reason, refused.hint);
    }
    return s;
  }

  private spec(device: Device): DeviceSpec {
    const spec = this.specs.get(device);
    if (!spec) {
      throw new InvalidOptionError(`device '${device}' is not one of ${this.name}'s devices (${this.devices.join(', ')}, or 'auto')`);
    }
    return spec;
  }

  private probeDevice(device: Device): Promise<DeviceStatus> {
    let p = this.probes.get(device);
    if (!p) {
      p = this.runProbe(this.spec(device));
      this.probes.set(device, p);
    }
    return p;
  }

  private async runProbe(spec: DeviceSpec): Promise<DeviceStatus> {
    const base = { device: spec.device, executionProvider: spec.executionProvider };
    const early = await spec.precheck?.(probeModel());
    if (early) return { ...base, available: false, reason: early, hint: spec.hint };
    if (spec.precheck && spec.precheckRunsProbe) return { ...base, available: true };
    try {
      // Loading and running a one-node model is the only reliable test: a provider can register
      // fine and still fail on the first session (missing CUDA libraries, no GPU adapter).
      const session = await this.ort.InferenceSession.create(probeModel(), {
        executionProviders: [spec.executionProvider],
        logSeverityLevel: 4,
      });
      const x = new this.ort.Tensor('float32', Float32Array.of(1, 2), [2]);
      const out = await session.run({ x });
      await session.release();
      const y = out.y.data as Float32Array;
      if (y[0] !== 2 || y[1] !== 4) return { ...base, available: false, reason: 'the probe model gave a wrong result', hint: spec.hint };
      return { ...base, available: true };
    } catch (err) {
      return { ...base, available: false, reason: nativeReason(err), hint: spec.hint };
    }
  }
}

/**
 * The probe: y = x + x on float32 [2], serialized. Kept as bytes rather than built with Graph so a
 * browser bundle of this backend needs no protobuf encoder (test/backend.test.ts decodes it).
 */
export const PROBE_MODEL_BASE64 =
  'CAoSCmxsYXZhLW1pbmkaBTAuMS4wOmsKIAoBeAoBeBIFQWRkXzAaCm5vZGU6QWRkXzAiA0FkZDoACh4KBUFkZF8wEgF5GgZub2RlOnkiCElkZW50aXR5OgASBXByb2JlWg8KAXgSCgoICAESBAoCCAJiDwoBeRIKCggIARIECgIIAkIECgAQFQ==';
let probeBytes: Uint8Array | undefined;
function probeModel(): Uint8Array {
  probeBytes ??= Uint8Array.from(atob(PROBE_MODEL_BASE64), (c) => c.charCodeAt(0));
  return probeBytes;
}

const ORT_TO_DTYPE: Record<string, DType> = {
  float32: 'float32',
  float16: 'float16',
  int8: 'int8',
  uint8: 'uint8',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
};

class OrtInferenceSession implements InferenceSession {
  private disposed = false;
  readonly traffic: RunTraffic = { fetchedBytes: 0, copiedBytes: 0, uploadedBytes: 0, downloadedBytes: 0 };

  constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtSession,
    readonly device: Device,
    readonly executionProvider: string,
    readonly capabilities: RuntimeCapabilities,
    private readonly queue: RunQueue,
  ) {
    this.inputs = valueInfos(session.inputNames, session.inputMetadata);
    this.outputs = valueInfos(session.outputNames, session.outputMetadata);
  }

  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];

  run(feeds: Record<string, Tensor | DeviceTensor>, fetches?: Fetches): Promise<Record<string, Tensor>>;
  run(feeds: Record<string, Tensor | DeviceTensor>, fetches: Fetches | undefined, options: RunOptions): Promise<Record<string, Tensor | DeviceTensor>>;
  async run(feeds: Record<string, Tensor | DeviceTensor>, fetches?: Fetches, options: RunOptions = {}): Promise<Record<string, Tensor | DeviceTensor>> {
    const out = await this.execute(feeds, fetches);
    if (options.keepOnDevice) return out;
    const result: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(out)) {
      if (!isDeviceTensor(t)) {
        result[name] = t;
        continue;
      }
      const data = await t.download();
      t.dispose();
      this.traffic.downloadedBytes += data.byteLength;
      result[name] = tensor(t.dtype, t.dims, data);
    }
    return result;
  }

  private async execute(feeds: Record<string, Tensor | DeviceTensor>, fetches?: Fetches): Promise<Record<string, Tensor | DeviceTensor>> {
    if (this.disposed) throw new SessionError('run() on a disposed session');
    const missing = this.session.inputNames.filter((n) => !(n in feeds));
    if (missing.length) throw new InvalidOptionError(`missing model inputs: ${missing.join(', ')}`);
    const ortFeeds: Record<string, OrtTensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = this.toOrt(t);
    const targets = fetches && !Array.isArray(fetches) ? (fetches as Record<string, Tensor>) : undefined;
    let ortFetches: readonly string[] | Record<string, OrtTensor> | undefined;
    if (Array.isArray(fetches)) ortFetches = fetches;
    else if (targets && this.capabilities.preallocatedOutputs) ortFetches = Object.fromEntries(Object.entries(targets).map(([n, t]) => [n, this.toOrt(t)]));
    else if (targets) ortFetches = Object.keys(targets);
    let out: Record<string, OrtTensor>;
    try {
      out = await this.queue.run(() => {
        if (this.disposed) throw new SessionError('run() on a disposed session');
        return ortFetches ? this.session.run(ortFeeds, ortFetches) : this.session.run(ortFeeds);
      });
    } catch (err) {
      throw new SessionError(`inference failed on ${this.device}: ${nativeReason(err)}`, { cause: err });
    }
    const result: Record<string, Tensor | DeviceTensor> = {};
    for (const [name, t] of Object.entries(out)) {
      if (t.location === 'gpu-buffer') {
        result[name] = deviceTensor(name, t);
        continue;
      }
      const host = fromOrt(name, t);
      this.traffic.fetchedBytes += host.data.byteLength;
      result[name] = host;
    }
    if (targets) {
      for (const [name, target] of Object.entries(targets)) {
        const got = result[name] as Tensor;
        if (got.data.length !== target.data.length) {
          throw new SessionError(`output '${name}' has shape [${got.dims.join(', ')}], the preallocated tensor [${target.dims.join(', ')}]`);
        }
        // onnxruntime-node wrote into the target (its binding then hands back a copy, which is
        // dropped here); only a runtime that ignores preallocated outputs needs the copy.
        if (!this.capabilities.preallocatedOutputs && got.data !== target.data) {
          (target.data as TensorData & { set(a: ArrayLike<unknown>): void }).set(got.data as never);
          this.traffic.copiedBytes += target.data.byteLength;
        }
        result[name] = target;
      }
    }
    return result;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }

  private toOrt(t: Tensor | DeviceTensor): OrtTensor {
    if (isDeviceTensor(t)) {
      const native = (t as { native?: OrtTensor }).native;
      if (!native) throw new InvalidOptionError('a device tensor of another runtime was fed to this session');
      return native;
    }
    // A device with memory of its own receives host feeds over the bus.
    if (this.capabilities.deviceMemory) this.traffic.uploadedBytes += t.data.byteLength;
    if (t.dtype === 'bfloat16') throw new InvalidOptionError('bfloat16 tensors cannot cross the onnxruntime JS API; convert to float16 or float32');
    return new this.ort.Tensor(t.dtype, t.data, t.dims);
  }
}

function valueInfos(names: readonly string[], metadata: readonly OrtValueMetadata[] | undefined): ValueInfo[] {
  return names.map((name, i) => {
    const m = metadata?.find((v) => v.name === name) ?? metadata?.[i];
    const dtype = m?.isTensor && m.type ? ORT_TO_DTYPE[m.type] : undefined;
    if (!dtype) throw new SessionError(`graph value '${name}' has type ${m?.type ?? 'unknown'}, which the stages do not use`);
    return { name, dtype, dims: m?.shape ?? [] };
  });
}

/** An output onnxruntime-web left on the GPU, wrapped so that only this file sees the runtime's tensor. */
function deviceTensor(name: string, t: OrtTensor): DeviceTensor {
  const dtype = ORT_TO_DTYPE[t.type];
  if (!dtype) throw new SessionError(`output '${name}' has type ${t.type}, which the stages do not use`);
  let disposed = false;
  return {
    dtype,
    dims: [...t.dims],
    location: 'gpu-buffer',
    native: t,
    async download() {
      if (disposed) throw new SessionError(`output '${name}' was disposed before it was downloaded`);
      return fromOrt(name, { type: t.type, dims: t.dims, data: await t.getData?.() }).data;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      t.dispose?.();
    },
  } as DeviceTensor;
}

function fromOrt(name: string, t: OrtTensor): Tensor {
  const dtype = ORT_TO_DTYPE[t.type];
  if (!dtype) throw new SessionError(`output '${name}' has type ${t.type}, which the stages do not use`);
  let data = t.data as TensorData;
  // Newer runtimes may hand float16 back as a Float16Array; keep the project's Uint16Array bits.
  if (dtype === 'float16' && !(data instanceof Uint16Array)) {
    const view = data as unknown as ArrayBufferView;
    data = new Uint16Array(view.buffer, view.byteOffset, view.byteLength / 2);
  }
  return tensor(dtype, t.dims, data as never);
}
