// Platform-neutral public API of @llava-mini/core. Node-only helpers (files, the onnxruntime-node
// backend) live in '@llava-mini/core/node'; the onnxruntime-web backend in '@llava-mini/core/web'.
export {
  LlavaMiniError,
  InvalidOptionError,
  DeviceUnavailableError,
  SafetensorsError,
  ModelFilesError,
  HubError,
  CheckpointMismatchError,
  UnsupportedConfigError,
  GraphError,
  SessionError,
  ImageError,
  VideoError,
  PromptTooLongError,
  KvCacheFullError,
  DisposedError,
  AbortError,
  FileError,
  errorMessage,
  fileSystemError,
  asLlavaMiniError,
  InternalError,
  type ErrorCode,
} from './errors.js';
export { debugEnabled } from './debug.js';
export { nestedDeeperThan } from './json-depth.js';
export { integerOption, numberOption } from './options.js';
export { mulberry32 } from './random.js';
export { now } from './clock.js';
export {
  isDeviceTensor,
  BYTES_PER_ELEMENT,
  numel,
  tensor,
  tensorBytes,
  type DType,
  type TypedArrayFor,
  type TensorData,
  type Tensor,
  type DeviceTensor,
} from './tensor.js';
export {
  f16BitsToF32,
  f32ToF16Bits,
  bf16BitsToF32,
  f32ToBf16Bits,
  f16ArrayToF32,
  f32ArrayToF16,
  bf16ArrayToF32,
  f32ArrayToBf16,
  toFloat32,
  castFloat,
  type FloatDType,
} from './dtype.js';
export {
  hasInput,
  hasOutput,
  type NodeDevice,
  type WebDevice,
  type Device,
  type DeviceRequest,
  type DeviceStatus,
  type ExternalDataFile,
  type ModelSource,
  type SessionOptions,
  type Fetches,
  type ValueInfo,
  type RunTraffic,
  type RuntimeCapabilities,
  type RunOptions,
  type InferenceSession,
  type Backend,
  type WeightSource,
} from './backend.js';
export { type ProgressEvent, type ProgressCallback } from './progress.js';
export { blocksPerRow, quantizeBlockwise, dequantizeBlockwise, type QuantizedWeight, type QuantizeOptions } from './quant.js';
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
