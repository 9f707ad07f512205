// @llava-mini/llm: the LLaMA-3 backbone (graph, KV cache, generation), its tokenizer and chat template.
// Platform-neutral: file reading lives in '@llava-mini/llm/node'.
export { readLlamaConfig, ropeCaches, ropeInverseFrequencies, type LlamaConfig, type RopeScaling } from './config.js';
export { llamaLayer, type AttentionFn } from './layer.js';
export { LLAMA_FILES } from './io.js';
export { buildLlamaGraph, LLAMA_IO, type BlockQuant, type KvCacheMode, type LlamaGraphOptions } from './graph.js';
export { PROMPT_KERNEL_MIN_ROWS } from './attention.js';
export { buildEmbeddingsGraph, type EmbeddingGraphOptions } from './embedding.js';
export { DEFAULT_KV_CACHE_BYTES, LlamaModel, type LlamaModelFiles, type LlamaModelOptions, type RunProfile } from './model.js';
export type { Sequence, SequenceModel } from './sequence.js';
export type { BatchStats, KvLayout, KvMode } from './kv/index.js';
export { assistantHeaderIds, Tokenizer, type ChatMessage, type TokenizerFiles } from './tokenizer.js';
export { StreamDecoder, TextStream } from './text.js';
export { checkResponseFormat, compileFormat, Grammar, GrammarMatcher, provideGrammarEngine, type ResponseFormat, SchemaError } from './grammar.js';
export { argmax, checkSamplingOptions, type IdLogprob, logprobsOf, Sampler, type SamplingOptions } from './sampling.js';
export {
  checkChoices,
  checkGenerateOptions,
  generate,
  generateChoices,
  MAX_CHOICES,
  MAX_TOP_LOGPROBS,
  Generation,
  type FinishReason,
  type GenerateOptions,
  type GeneratedToken,
  type GenerationResult,
  type GenerationStats,
  type PromptSource,
  type TokenLogprob,
} from './generate.js';
