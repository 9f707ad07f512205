// config.json read once: each stage's settings by its own package's reader, kept in one record that
// whoever builds, checks or opens a stage is handed (nothing below reads the file's keys again).
import { readVisionConfig, type VisionConfig } from '@llava-mini/encoder';
import { type LlamaConfig, readLlamaConfig } from '@llava-mini/llm';
import { type PrefusionConfig, readPrefusionConfig } from '@llava-mini/prefusion';

export interface ModelConfig {
  /** config.json as written: the manifest keeps it, and keys no stage reads (tokenizer_model_max_length) stay at hand. */
  json: Record<string, unknown>;
  llama: LlamaConfig;
  /** The projector and pre-fusion layers; their `llama` is the LLM's (spec §3.1). */
  prefusion: PrefusionConfig;
  vision: VisionConfig;
  /** s: the side of the CLIP grid the compressor's keys cover, (image / patch) * resolution_ratio. */
  keyGrid: number;
}

/** Read a LLaVA-Mini config.json; a value the runtime does not take is an UnsupportedConfigError naming its key. */
export function readModelConfig(json: Record<string, unknown>): ModelConfig {
  // The LLM's keys first, so a config wrong in several places names the same key it always has.
  const llama = readLlamaConfig(json);
  const prefusion = readPrefusionConfig(json, llama);
  const vision = readVisionConfig(json);
  return { json, llama, prefusion, vision, keyGrid: vision.gridSize * vision.resolutionRatio };
}
