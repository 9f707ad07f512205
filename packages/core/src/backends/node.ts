import type { Backend } from '../backend.js';
import { DeviceUnavailableError } from '../errors.js';
import { NODE_WEBGPU_ATTENTION_QUERY_LIMIT, webgpuPrecheck, webgpuProviderOptions } from './node-webgpu.js';
import { type OrtModule, OrtBackend } from './ort.js';

const CUDA_HINT =
  "CUDA needs an NVIDIA GPU with the CUDA 12 runtime and cuDNN 9, and onnxruntime-node's CUDA libraries: " +
  'reinstall them with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`, check `nvidia-smi`, or use device "cpu".';
const WEBGPU_HINT =
  "onnxruntime-node's WebGPU provider (experimental) needs a GPU adapter through Vulkan (Linux), D3D12 (Windows) or Metal (macOS); " +
  'install the GPU driver and its Vulkan loader (libvulkan1), or use device "cpu" or "cuda".';

let backend: Promise<Backend> | undefined;

/**
 * The onnxruntime-node backend: devices cuda, cpu and webgpu ('auto' tries cuda, then cpu; webgpu
 * only when asked for). onnxruntime-node is loaded on first use, so this entry point's other
 * exports work without it.
 */
export function nodeBackend(): Promise<Backend> {
  backend ??= (async () => {
    let mod: { default?: OrtModule } & OrtModule;
    // onnxruntime-node 1.30's telemetry runs a regex over /proc/self/cmdline when a session is
    // created: a command line of about 32 KB (a long --prompt, a glob of images) overflows the stack
    // (SIGSEGV), and it leaves a mat-debug-<pid>.log in the temp folder. It reads the variable after
    // load, so setting it here, before the import, is enough; a value the user set is kept.
    if (!process.env.ORT_DISABLE_TELEMETRY) process.env.ORT_DISABLE_TELEMETRY = '1';
    try {
      mod = (await import('onnxruntime-node')) as never;
    } catch (err) {
      backend = undefined;
      throw new DeviceUnavailableError('cpu', 'the onnxruntime-node package is not installed', 'Run `npm install onnxruntime-node`.', { cause: err });
    }
    const ort = mod.default ?? mod;
    // onnxruntime's default logger would print a native error line for every probe of a missing
    // provider (the failure reaches the caller as a typed error anyway). Its level is fixed when the
    // first session is made; ORT_LOG_LEVEL=warning brings its own log back.
    (ort as unknown as { env: { logLevel?: string } }).env.logLevel = process.env.ORT_LOG_LEVEL ?? 'fatal';
    return new OrtBackend('onnxruntime-node', ort, [
      { device: 'cuda', executionProvider: 'cuda', hint: CUDA_HINT },
      { device: 'cpu', executionProvider: 'cpu', capabilities: { promptAttention: true }, hint: 'The CPU provider ships inside onnxruntime-node; reinstall it.' },
      {
        device: 'webgpu',
        executionProvider: 'webgpu',
        precheck: webgpuPrecheck,
        precheckRunsProbe: true,
        providerOptions: webgpuProviderOptions,
        capabilities: { attentionQueryLimit: NODE_WEBGPU_ATTENTION_QUERY_LIMIT },
        hint: WEBGPU_HINT,
      },
    ], { preallocatedOutputs: true });
  })();
  return backend;
}
