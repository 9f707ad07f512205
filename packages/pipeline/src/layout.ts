// The tensors a LLaVA-Mini checkpoint holds, derived from its config (spec §7.1: 732 for the
// release), and the check that a checkpoint has exactly those before anything is converted: a config
// with fewer layers than the weights would otherwise convert silently into a truncated model.
import { CheckpointMismatchError } from '@llava-mini/core';
import type { ModelConfig } from './model-config.js';

export const VISION_MODEL_PREFIX = 'model.vision_tower.vision_tower.vision_model.';

const LLAMA_LAYER = ['input_layernorm', 'post_attention_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const CLIP_LAYER = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'layer_norm1', 'layer_norm2', 'mlp.fc1', 'mlp.fc2'];
const COMPRESSOR = ['query', 'pos_embed', 'attn.in_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight', 'attn.out_proj.bias', 'ln_q.weight', 'ln_q.bias', 'ln_kv.weight', 'ln_kv.bias'];

export interface Layout {
  /** Tensors the converted graphs read. */
  required: Set<string>;
  /** Tensors a checkpoint may hold that no graph reads (CLIP blocks past mm_vision_select_layer, its post_layernorm, a tied lm_head). */
  optional: Set<string>;
}

/** The checkpoint tensor names `config` implies. */
export function checkpointLayout(config: ModelConfig): Layout {
  const { llama, prefusion, vision } = config;
  const required = new Set<string>(['model.embed_tokens.weight', 'model.norm.weight']);
  const optional = new Set<string>();
  (llama.tieWordEmbeddings ? optional : required).add('lm_head.weight');
  const layers = (prefix: string, count: number) => {
    for (let i = 0; i < count; i++) for (const t of LLAMA_LAYER) required.add(`${prefix}.${i}.${t}.weight`);
  };
  layers('model.layers', llama.numLayers);
  layers('model.prefusion_layers', prefusion.layers);
  for (const t of ['0.weight', '0.bias', '2.weight', '2.bias']) required.add(`model.mm_projector.${t}`);
  for (const t of COMPRESSOR) required.add(`model.compressor.${t}`);
  const v = VISION_MODEL_PREFIX;
  for (const t of ['embeddings.class_embedding', 'embeddings.patch_embedding.weight', 'embeddings.position_embedding.weight', 'pre_layrnorm.weight', 'pre_layrnorm.bias']) required.add(`${v}${t}`);
  for (let i = 0; i < vision.numLayers; i++) {
    for (const t of CLIP_LAYER) for (const p of ['weight', 'bias']) (i < vision.blocks ? required : optional).add(`${v}encoder.layers.${i}.${t}.${p}`);
  }
  optional.add(`${v}post_layernorm.weight`);
  optional.add(`${v}post_layernorm.bias`);
  return { required, optional };
}

/** Buffers older transformers saved with the weights; derived from the config, so never needed. */
const DERIVED = /\.rotary_emb\.inv_freq$/;

function list(names: string[]): string {
  const shown = names.slice(0, 6).join(', ');
  return names.length > 6 ? `${shown} and ${names.length - 6} more` : shown;
}

/** For extra layers: "config.json has num_hidden_layers 2, the weights have 4 of model.layers". */
function layerHint(extra: string[], config: ModelConfig): string {
  const groups: [RegExp, string, string][] = [
    [/^model\.layers\.(\d+)\./, 'num_hidden_layers', 'model.layers'],
    [/^model\.prefusion_layers\.(\d+)\./, 'prefusion_layer_num', 'model.prefusion_layers'],
    [new RegExp(`^${VISION_MODEL_PREFIX.replace(/\./g, '\\.')}encoder\\.layers\\.(\\d+)\\.`), 'vision num_hidden_layers', 'CLIP encoder.layers'],
  ];
  const hints: string[] = [];
  for (const [re, key, what] of groups) {
    const top = Math.max(-1, ...extra.map((n) => Number(re.exec(n)?.[1] ?? -1)));
    if (top >= 0) hints.push(`the weights have ${top + 1} ${what} (config ${key}: ${key.startsWith('vision') ? config.vision.numLayers : config.json[key]})`);
  }
  return hints.length ? `; ${hints.join(', ')}` : '';
}

/**
 * Check that a checkpoint's tensor names are exactly those its config implies. Shapes and dtypes are
 * checked where each tensor is read; this catches what no graph would read, and names what is missing
 * before any conversion work.
 */
export function checkLayout(config: ModelConfig, names: readonly string[], where: string): void {
  const { required, optional } = checkpointLayout(config);
  const have = new Set(names);
  const missing = [...required].filter((n) => !have.has(n));
  if (missing.length) throw new CheckpointMismatchError(`${where} lacks ${missing.length} tensor(s) its config.json needs: ${list(missing)}`);
  const extra = names.filter((n) => !required.has(n) && !optional.has(n) && !DERIVED.test(n)).sort();
  if (extra.length) {
    throw new CheckpointMismatchError(`${where} has ${extra.length} tensor(s) its config.json does not use: ${list(extra)}${layerHint(extra, config)}`);
  }
}
