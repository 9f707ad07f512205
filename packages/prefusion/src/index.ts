// @llava-mini/prefusion: the LLaVA-Mini projector and modality pre-fusion layers (spec §3) as an
// ONNX graph over a causal prefix (a picture's rows, cacheable, then a prompt's), and its runtime.
export { DEFAULT_MAX_POSITIONS, readPrefusionConfig, type PrefusionConfig } from './config.js';
export { keptRows } from './inputs.js';
export { buildPrefusionGraph, PREFUSION_IO, type PrefusionGraphOptions } from './graph.js';
export {
  type FuseOptions,
  type PicturePrefix,
  Prefusion,
  type PrefusionImage,
  type PrefusionOptions,
  type PrefusionPicture,
  type PrefusionResult,
  type PrefusionText,
} from './prefusion.js';
