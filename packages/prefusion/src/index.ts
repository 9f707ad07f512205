// @llava-mini/prefusion: the LLaVA-Mini projector and modality pre-fusion layers (spec §3) as an
// ONNX graph, the position ids and mask it takes, and its runtime (images and video frames).
export { DEFAULT_MAX_POSITIONS, readPrefusionConfig, type PrefusionConfig } from './config.js';
export { prefusionInputs, type PrefusionInputs } from './inputs.js';
export { buildPrefusionGraph, type PrefusionGraphOptions } from './graph.js';
export { Prefusion, type PrefusionImage, type PrefusionOptions, type PrefusionResult, type PrefusionText } from './prefusion.js';
