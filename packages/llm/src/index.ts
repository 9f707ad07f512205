export { readLlamaConfig, ropeCaches, ropeInverseFrequencies, type LlamaConfig, type RopeScaling } from './config.js';
export { llamaLayer, type AttentionFn } from './layer.js';
