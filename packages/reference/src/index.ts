export * from './math.js';
export * from './llama.js';
export * from './testing.js';
