// @llava-mini/prefusion: the LLaVA-Mini projector and modality pre-fusion layers (spec §3) as an
// ONNX graph over a causal prefix (a picture's rows, cacheable, then a prompt's), and its runtime;
// the LLaVA-Mini prompt with its <image> placeholder, and the LLM input built from pre-fusion's outputs.
export { DEFAULT_MAX_POSITIONS, readPrefusionConfig, type PrefusionConfig } from './config.js';
export { keptRows } from './inputs.js';
export { buildPrefusionGraph, PREFUSION_IO, type PrefusionGraphOptions } from './graph.js';
export {
  type FusedFrames,
  type FuseOptions,
  type PicturePrefix,
  Prefusion,
  type PrefusionImage,
  type PrefusionOptions,
  type PrefusionPicture,
  type PrefusionResult,
  type PrefusionText,
} from './prefusion.js';
export {
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
export { embeddingIds, llmInput } from './llm-input.js';
