// The reference: plain-TypeScript math of every stage, written from docs/spec.md, for the tests to hold the graphs against.
export { linear, layerNorm, rmsNorm, erf, gelu, quickGelu, silu, map, add, attendHead, splitHeads, mergeHeads } from './math.js';
export { refLlamaConfig, refInvFreq, rotate, refDecoderLayer, RefLlama, argmax, type RefLlamaConfig, type LayerCache } from './llama.js';
export { floats, cachedFloat32, type RefTensor, type RefWeights, type Float32Weights } from './weights.js';
export { refCubicKernel, refBicubicResize, refCompressor } from './compressor.js';
export { refProjector, refPrefusion, type RefPrefusionInputs } from './prefusion.js';
export { refClipFeatures } from './clip.js';
export { refGenerate, type RefPicture } from './pipeline.js';
