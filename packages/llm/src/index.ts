// @llava-mini/llm: the LLaMA-3 backbone (graph, KV cache, generation) and the LLaVA-Mini prompt.
// Platform-neutral: file reading lives in '@llava-mini/llm/node'.
export { readLlamaConfig, ropeCaches, ropeInverseFrequencies, type LlamaConfig, type RopeScaling } from './config.js';
export { llamaLayer, type AttentionFn } from './layer.js';
export { buildLlamaGraph, LLAMA_IO, type BlockQuant, type KvCacheMode, type LlamaGraphOptions } from './graph.js';
export { buildEmbeddingsGraph } from './embedding.js';
export { DEFAULT_KV_CACHE_BYTES, LlamaModel, Sequence, type LlamaModelFiles, type LlamaModelOptions, type RunProfile } from './model.js';
export type { KvLayout, KvMode } from './cache.js';
export { Tokenizer, type ChatMessage, type TokenizerFiles } from './tokenizer.js';
export { StreamDecoder, TextStream } from './text.js';
export {
  assistantHeaderIds,
  buildLlavaPrompt,
  IMAGE_TOKEN,
  IMAGE_TOKEN_INDEX,
  LLAVA_SYSTEM_PROMPT,
  llavaMessages,
  tokenizeWithImage,
  type ChatTurn,
  type LlavaPrompt,
  type LlavaPromptOptions,
} from './prompt.js';
export { argmax, checkSamplingOptions, Sampler, type SamplingOptions } from './sampling.js';
export {
  checkGenerateOptions,
  generate,
  Generation,
  type FinishReason,
  type GenerateOptions,
  type GeneratedToken,
  type GenerationResult,
  type GenerationStats,
  type PromptSource,
} from './generate.js';
