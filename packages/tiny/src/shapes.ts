import { InvalidOptionError } from '@llava-mini/core';

/** Where the vision tower's tensors live inside a LLaVA-Mini checkpoint (HF's CLIPVisionTower nesting). */
export const VISION_PREFIX = 'model.vision_tower.vision_tower.';

function int(config: Record<string, unknown>, key: string, where = 'config'): number {
  const v = config[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new InvalidOptionError(`${where}.${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The nine tensors of one Llama decoder layer (LLM and pre-fusion layers alike). */
function llamaLayer(out: Map<string, number[]>, prefix: string, h: number, inter: number, nh: number, nkv: number, hd: number): void {
  out.set(`${prefix}.input_layernorm.weight`, [h]);
  out.set(`${prefix}.post_attention_layernorm.weight`, [h]);
  out.set(`${prefix}.self_attn.q_proj.weight`, [nh * hd, h]);
  out.set(`${prefix}.self_attn.k_proj.weight`, [nkv * hd, h]);
  out.set(`${prefix}.self_attn.v_proj.weight`, [nkv * hd, h]);
  out.set(`${prefix}.self_attn.o_proj.weight`, [h, nh * hd]);
  out.set(`${prefix}.mlp.gate_proj.weight`, [inter, h]);
  out.set(`${prefix}.mlp.up_proj.weight`, [inter, h]);
  out.set(`${prefix}.mlp.down_proj.weight`, [h, inter]);
}

/**
 * The tensors of an HF `CLIPVisionModel`'s `vision_model` under `prefix` (which ends with
 * `vision_model.`), from a CLIP vision config (`hidden_size`, `intermediate_size`,
 * `num_hidden_layers`, `image_size`, `patch_size`, optional `num_channels`).
 */
export function clipTensorShapes(visionConfig: Record<string, unknown>, prefix = 'vision_model.', out = new Map<string, number[]>()): Map<string, number[]> {
  const where = 'vision_config';
  const d = int(visionConfig, 'hidden_size', where);
  const inter = int(visionConfig, 'intermediate_size', where);
  const layers = int(visionConfig, 'num_hidden_layers', where);
  const image = int(visionConfig, 'image_size', where);
  const patch = int(visionConfig, 'patch_size', where);
  const channels = visionConfig.num_channels === undefined ? 3 : int(visionConfig, 'num_channels', where);
  const grid = Math.floor(image / patch);
  out.set(`${prefix}embeddings.class_embedding`, [d]);
  out.set(`${prefix}embeddings.patch_embedding.weight`, [d, channels, patch, patch]);
  out.set(`${prefix}embeddings.position_embedding.weight`, [grid * grid + 1, d]);
  // "pre_layrnorm" is misspelled in transformers itself, and checkpoints carry that name.
  out.set(`${prefix}pre_layrnorm.weight`, [d]);
  out.set(`${prefix}pre_layrnorm.bias`, [d]);
  for (let i = 0; i < layers; i++) {
    const p = `${prefix}encoder.layers.${i}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      out.set(`${p}self_attn.${proj}.weight`, [d, d]);
      out.set(`${p}self_attn.${proj}.bias`, [d]);
    }
    out.set(`${p}layer_norm1.weight`, [d]);
    out.set(`${p}layer_norm1.bias`, [d]);
    out.set(`${p}layer_norm2.weight`, [d]);
    out.set(`${p}layer_norm2.bias`, [d]);
    out.set(`${p}mlp.fc1.weight`, [inter, d]);
    out.set(`${p}mlp.fc1.bias`, [inter]);
    out.set(`${p}mlp.fc2.weight`, [d, inter]);
    out.set(`${p}mlp.fc2.bias`, [d]);
  }
  out.set(`${prefix}post_layernorm.weight`, [d]);
  out.set(`${prefix}post_layernorm.bias`, [d]);
  return out;
}

/**
 * The names and shapes a LLaVA-Mini checkpoint with this config.json holds (spec §7.1), in no
 * particular order. The CLIP part needs the `vision_config` key this package writes; with
 * `includeVision: false` it is left out, as writeTinyCheckpoint does.
 */
export function tinyTensorShapes(config: Record<string, unknown>, options: { includeVision?: boolean } = {}): Map<string, number[]> {
  const h = int(config, 'hidden_size');
  const inter = int(config, 'intermediate_size');
  const layers = int(config, 'num_hidden_layers');
  const nh = int(config, 'num_attention_heads');
  const nkv = config.num_key_value_heads === undefined ? nh : int(config, 'num_key_value_heads');
  const hd = config.head_dim === undefined ? h / nh : int(config, 'head_dim');
  const vocab = int(config, 'vocab_size');
  const dv = int(config, 'mm_hidden_size');
  const c = int(config, 'compressor_size');
  const prefusion = int(config, 'prefusion_layer_num');

  const out = new Map<string, number[]>();
  out.set('model.embed_tokens.weight', [vocab, h]);
  if (config.tie_word_embeddings !== true) out.set('lm_head.weight', [vocab, h]);
  out.set('model.norm.weight', [h]);
  for (let i = 0; i < layers; i++) llamaLayer(out, `model.layers.${i}`, h, inter, nh, nkv, hd);
  for (let i = 0; i < prefusion; i++) llamaLayer(out, `model.prefusion_layers.${i}`, h, inter, nh, nkv, hd);

  out.set('model.mm_projector.0.weight', [h, dv]);
  out.set('model.mm_projector.0.bias', [h]);
  out.set('model.mm_projector.2.weight', [h, h]);
  out.set('model.mm_projector.2.bias', [h]);

  const q = c * c;
  out.set('model.compressor.query', [q, dv]);
  out.set('model.compressor.pos_embed', [q, dv]);
  out.set('model.compressor.attn.in_proj_weight', [3 * dv, dv]);
  out.set('model.compressor.attn.in_proj_bias', [3 * dv]);
  out.set('model.compressor.attn.out_proj.weight', [dv, dv]);
  out.set('model.compressor.attn.out_proj.bias', [dv]);
  out.set('model.compressor.ln_q.weight', [dv]);
  out.set('model.compressor.ln_q.bias', [dv]);
  out.set('model.compressor.ln_kv.weight', [dv]);
  out.set('model.compressor.ln_kv.bias', [dv]);

  if (options.includeVision !== false) {
    const vc = config.vision_config;
    if (vc === null || typeof vc !== 'object') throw new InvalidOptionError('config.vision_config is missing; it is needed for the CLIP tensor shapes');
    clipTensorShapes(vc as Record<string, unknown>, `${VISION_PREFIX}vision_model.`, out);
  }
  return out;
}

/**
 * The compressor's fixed 2D sin-cos table (spec §2.1) for a `grid`×`grid` query grid, computed in
 * float64. Row m = i*grid + j is [sin(jω), cos(jω), sin(iω), cos(iω)] with ω_k = 10000^(-k/quarter):
 * the column index comes first, as in the MAE helper the release used.
 */
export function sinCosPosEmbed(grid: number, dim: number): Float64Array {
  if (!Number.isSafeInteger(grid) || grid <= 0) throw new InvalidOptionError(`grid must be a positive integer, got ${grid}`);
  if (!Number.isSafeInteger(dim) || dim <= 0 || dim % 4 !== 0) throw new InvalidOptionError(`dim must be a positive multiple of 4, got ${dim}`);
  const quarter = dim / 4;
  const out = new Float64Array(grid * grid * dim);
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const row = (i * grid + j) * dim;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / 10000 ** (k / quarter); // the MAE helper's exact expression
        out[row + k] = Math.sin(j * omega);
        out[row + quarter + k] = Math.cos(j * omega);
        out[row + 2 * quarter + k] = Math.sin(i * omega);
        out[row + 3 * quarter + k] = Math.cos(i * omega);
      }
    }
  }
  return out;
}

/** How a tensor is initialised, decided by its name so that shapes and values can never disagree. */
export type InitKind = 'normal' | 'norm-weight' | 'norm-bias' | 'sincos';

const NORM_MODULE = /(?:^|\.)(?:[a-z_]*layernorm|pre_layrnorm|layer_norm\d|ln_q|ln_kv|norm)\.(weight|bias)$/;

export function initKind(name: string): InitKind {
  if (name.endsWith('compressor.pos_embed')) return 'sincos';
  const m = NORM_MODULE.exec(name);
  if (m) return m[1] === 'weight' ? 'norm-weight' : 'norm-bias';
  return 'normal';
}
