import { type LlamaConfig, readLlamaConfig } from '@llava-mini/llm';
import { UnsupportedConfigError } from '@llava-mini/core';

/** What the projector and the pre-fusion layers need from config.json. */
export interface PrefusionConfig {
  /** The pre-fusion layers share the LLM's hyper-parameters (spec §3.1). */
  llama: LlamaConfig;
  /** D: width of the CLIP features the projector takes (`mm_hidden_size`). */
  visionHidden: number;
  /** `prefusion_layer_num` (4 when absent, as in the release code). */
  layers: number;
}

/**
 * RoPE cache rows built into the graph when the caller does not say: covers the HD layout
 * ((24*2)^2 + 576 + 64 image slots) plus a 4096-token prompt, at 2 MB in float16 for head_dim 128.
 */
export const DEFAULT_MAX_POSITIONS = 8192;

/** `llama`, when the caller has read it already (it is the LLM's own config), is not read again. */
export function readPrefusionConfig(json: Record<string, unknown>, llama?: LlamaConfig): PrefusionConfig {
  // LLaVA's builder reads getattr(config, 'mm_projector_type', 'linear').
  const projector = json.mm_projector_type ?? 'linear';
  if (projector !== 'mlp2x_gelu') {
    throw new UnsupportedConfigError('mm_projector_type', `only 'mlp2x_gelu' is implemented (LLaVA-Mini's projector), got ${JSON.stringify(projector)}`);
  }
  const visionHidden = json.mm_hidden_size;
  if (typeof visionHidden !== 'number' || !Number.isInteger(visionHidden) || visionHidden <= 0) {
    throw new UnsupportedConfigError('mm_hidden_size', `expected a positive integer, got ${JSON.stringify(visionHidden)}`);
  }
  const layers = json.prefusion_layer_num ?? 4;
  if (typeof layers !== 'number' || !Number.isInteger(layers) || layers < 0) {
    throw new UnsupportedConfigError('prefusion_layer_num', `expected a non-negative integer, got ${JSON.stringify(layers)}`);
  }
  return { llama: llama ?? readLlamaConfig(json), visionHidden, layers };
}
