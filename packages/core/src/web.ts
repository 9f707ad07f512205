// Browser entry of @llava-mini/core: the onnxruntime-web backend (wasm, webgpu). Never imports
// onnxruntime-node or node: modules at top level, so bundlers can use it as is.
export * from './index.js';
export { webBackend, type WebBackendOptions, webgpuGraphCheck } from './backends/web.js';
