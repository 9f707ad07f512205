// @llava-mini/compressor: the LLaVA-Mini query compressor (spec §2) as an ONNX graph, and its runtime.
export { readCompressorConfig, type CompressorConfig } from './config.js';
export { bicubicTaps, keyPositionTable } from './pos.js';
export { buildCompressorGraph, type CompressorGraphOptions } from './graph.js';
export { Compressor, type CompressorOptions } from './compressor.js';
