export * from './math.js';
export * from './llama.js';
export * from './weights.js';
export * from './compressor.js';
export * from './prefusion.js';
export * from './clip.js';
export * from './pipeline.js';
