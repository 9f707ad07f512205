// @llava-mini/tiny: seeded random-weight LLaVA-Mini checkpoints in the real Hugging Face layout, so
// every test builds its models locally and nothing downloads one.
export { writeTinyCheckpoint, writeTinyClip } from './checkpoint.js';
export type { TinyCheckpoint, TinyClip } from './checkpoint.js';
export type { FloatDTypeName, RopeScaling, TinyOptions } from './options.js';
export { clipTensorShapes, initKind, sinCosPosEmbed, tinyTensorShapes, VISION_PREFIX } from './shapes.js';
export type { InitKind } from './shapes.js';
export { tensorValues } from './weights.js';
export { LLAVA_MINI_SYSTEM_PROMPT } from './corpus.js';
export { LLAMA3_CHAT_TEMPLATE, SPECIAL_TOKENS, writeTinyTokenizer, type BpeSpec } from './tokenizer.js';
