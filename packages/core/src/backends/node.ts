import type { Backend } from '../backend.js';
import { DeviceUnavailableError } from '../errors.js';
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
    try {
      mod = (await import('onnxruntime-node')) as never;
    } catch (err) {
      backend = undefined;
      throw new DeviceUnavailableError('cpu', 'the onnxruntime-node package is not installed', 'Run `npm install onnxruntime-node`.', { cause: err });
    }
    return new OrtBackend('onnxruntime-node', mod.default ?? mod, [
      { device: 'cuda', executionProvider: 'cuda', hint: CUDA_HINT },
      { device: 'cpu', executionProvider: 'cpu', hint: 'The CPU provider ships inside onnxruntime-node; reinstall it.' },
      { device: 'webgpu', executionProvider: 'webgpu', hint: WEBGPU_HINT },
    ], { preallocatedOutputs: true });
  })();
  return backend;
}
