import type { Backend, ModelSource } from '../backend.js';
import { DeviceUnavailableError, ModelFilesError } from '../errors.js';
import { externalDataLocations } from '../onnx/scan.js';
import { type OrtModule, OrtBackend } from './ort.js';

export interface WebBackendOptions {
  /** WASM worker threads (onnxruntime-web's env.wasm.numThreads); 1 disables threading. */
  numThreads?: number;
  /** Where the .wasm files are served from, when a bundler does not copy them next to the script. */
  wasmPaths?: string;
}

interface OrtWebModule extends OrtModule {
  env: { wasm: { numThreads?: number; wasmPaths?: string } };
}

const WEBGPU_HINT =
  'Use a browser with WebGPU enabled (Chrome or Edge 113+, Safari 26+, Firefox 141+ on Windows) on a machine with a GPU, ' +
  'or use device "wasm".';

type Adapter = { features?: { has(name: string): boolean } } | null;
const gpu = () => (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<Adapter> } } }).navigator?.gpu;

async function webgpuPrecheck(): Promise<string | undefined> {
  if (!gpu()) return 'this JavaScript environment has no WebGPU (navigator.gpu is undefined)';
  const adapter = await gpu()?.requestAdapter().catch(() => null);
  return adapter ? undefined : 'navigator.gpu.requestAdapter() found no GPU adapter';
}

/**
 * A float16 graph on an adapter without shader-f16 loads and then computes garbage on
 * onnxruntime-web's WebGPU kernels (zeros, here on SwiftShader): refuse it with the way out.
 */
export async function webgpuGraphCheck(usesFloat16: boolean): Promise<{ reason: string; hint: string } | undefined> {
  if (!usesFloat16) return undefined;
  const adapter = await gpu()?.requestAdapter().catch(() => null);
  if (adapter?.features?.has('shader-f16')) return undefined;
  return {
    reason: "this WebGPU adapter has no 'shader-f16', which a float16 model needs",
    hint: 'Use a float32 model on it (`llava-mini convert CHECKPOINT --out DIR --dtype fp32`, target cpu), or device "wasm".',
  };
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

async function loadBytes(pathOrUrl: string): Promise<Uint8Array> {
  try {
    if (isNode && !/^(https?|blob|data):/.test(pathOrUrl)) {
      const fs = await import('node:fs/promises');
      return new Uint8Array(await fs.readFile(pathOrUrl));
    }
    const res = await fetch(pathOrUrl);
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    return new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    throw new ModelFilesError(pathOrUrl, `cannot read the model: ${(err as Error).message}`, { cause: err });
  }
}

function sibling(base: string, name: string): string {
  if (/^[a-z]+:/.test(base)) return new URL(name, base).href;
  const slash = base.lastIndexOf('/');
  return slash < 0 ? name : `${base.slice(0, slash + 1)}${name}`;
}

/**
 * onnxruntime-web does not look for external data beside a model the way the native runtime does,
 * so a model given by path or URL is read here and its data files are listed for it.
 */
async function withExternalData(source: ModelSource): Promise<ModelSource> {
  if (typeof source !== 'string') return source;
  const model = await loadBytes(source);
  const locations = externalDataLocations(model);
  if (!locations.length) return model;
  return { model, externalData: locations.map((path) => ({ path, data: sibling(source, path) })) };
}

let backend: Promise<Backend> | undefined;

/**
 * The onnxruntime-web backend: devices webgpu and wasm ('auto' tries webgpu, then wasm). Its WASM
 * backend also runs under Node, which is how CI tests the browser path. Options apply on first call.
 */
export function webBackend(options: WebBackendOptions = {}): Promise<Backend> {
  backend ??= (async () => {
    let mod: { default?: OrtWebModule } & OrtWebModule;
    try {
      mod = (await import('onnxruntime-web')) as never;
    } catch (err) {
      backend = undefined;
      throw new DeviceUnavailableError('wasm', 'the onnxruntime-web package is not installed', 'Run `npm install onnxruntime-web`.', { cause: err });
    }
    const ort = mod.default ?? mod;
    if (options.numThreads !== undefined) ort.env.wasm.numThreads = options.numThreads;
    if (options.wasmPaths !== undefined) ort.env.wasm.wasmPaths = options.wasmPaths;
    return new OrtBackend('onnxruntime-web', ort, [
      // Its WebGPU GroupQueryAttention returns past + new rows rather than filling a shared buffer.
      { device: 'webgpu', executionProvider: 'webgpu', precheck: webgpuPrecheck, graphCheck: webgpuGraphCheck, capabilities: { kvCacheInPlace: false, deviceMemory: true }, hint: WEBGPU_HINT },
      { device: 'wasm', executionProvider: 'wasm', hint: 'The WASM backend ships inside onnxruntime-web; check that its .wasm files are served (env.wasm.wasmPaths).' },
    ], { preallocatedOutputs: false }, withExternalData);
  })();
  return backend;
}
