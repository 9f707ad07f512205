// Platform-neutral public API of @llava-mini/core. Node-only helpers (files, the onnxruntime-node
// backend) live in '@llava-mini/core/node'; the onnxruntime-web backend in '@llava-mini/core/web'.
export * from './errors.js';
export { debugEnabled } from './debug.js';
export { integerOption, numberOption } from './options.js';
export { mulberry32 } from './random.js';
export { now } from './clock.js';
export * from './tensor.js';
export * from './dtype.js';
export * from './backend.js';
export * from './progress.js';
export * from './quant.js';
export { Graph } from './onnx/ops.js';
export { attr, GraphCore, Value } from './onnx/builder.js';
export type { Attrs, AttrValue, Dim, ExternalRef, GraphOptions, OpOptions, WeightSink } from './onnx/builder.js';
export { decodeModel, encodeModel } from './onnx/proto.js';
export { externalDataLocations, modelInputs, modelNodes, type NodeInfo } from './onnx/scan.js';
export { buildHeader, headerLength, MAX_HEADER_BYTES, parseHeader, SAFETENSORS_DTYPES } from './safetensors.js';
export type { SafetensorsHeader, TensorEntry, TensorInfo } from './safetensors.js';
export { FP32, linear, param, type WeightFormat } from './onnx/linear.js';
export { readWeight } from './weights.js';
export { RunQueue } from './queue.js';
