import { UnsupportedConfigError } from '@llava-mini/core';

/** Which tokens the tower hands on: 'patch' drops CLS (LLaVA's default), 'cls_patch' keeps it first. */
export type SelectFeature = 'patch' | 'cls_patch';
/** 'pad' letterboxes each piece to a square first; 'square' resizes the short side and centre-crops. */
export type AspectMode = 'pad' | 'square';

/** CLIP's normalisation constants (openai/clip-vit-large-patch14-336 preprocessor_config.json). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** The CLIP vision tower and the LLaVA preprocessing keys that decide what reaches it. */
export interface VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  /** S: pieces are S x S pixels. */
  imageSize: number;
  patchSize: number;
  /** g = floor(S / patch): the patch grid is g x g. */
  gridSize: number;
  layerNormEps: number;
  /** `mm_vision_select_layer` as written (negative counts from the end of hidden_states). */
  selectLayer: number;
  /** Encoder blocks actually computed: hidden_states[selectLayer] is the output of this many blocks. */
  blocks: number;
  selectFeature: SelectFeature;
  /** Tokens per piece in the output: g*g, plus one with 'cls_patch'. */
  tokens: number;
  imageAspectRatio: AspectMode;
  /** N: HD pieces per side (1 = standard resolution). */
  resolutionRatio: number;
}

type Json = Record<string, unknown>;

/**
 * CLIPVisionConfig defaults in transformers (what a `vision_config` that omits a key means), and the
 * towers LLaVA checkpoints name in `mm_vision_tower` without shipping their config.
 */
const HF_CLIP_VISION_DEFAULTS: Json = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  image_size: 224,
  patch_size: 32,
  layer_norm_eps: 1e-5,
  hidden_act: 'quick_gelu',
  num_channels: 3,
};
const KNOWN_TOWERS: Record<string, Json> = {
  'clip-vit-large-patch14-336': { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 336, patch_size: 14 },
  'clip-vit-large-patch14': { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 224, patch_size: 14 },
};

function int(json: Json, key: string, where: string): number {
  const v = json[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new UnsupportedConfigError(`${where}${key}`, `expected a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The CLIP keys: `vision_config`, a standalone CLIP config, or the known tower named by `mm_vision_tower`. */
function visionKeys(json: Json): { keys: Json; where: string } {
  if (json.model_type === 'clip_vision_model') return { keys: { ...HF_CLIP_VISION_DEFAULTS, ...json }, where: '' };
  const nested = json.vision_config;
  if (nested !== undefined && nested !== null) {
    if (typeof nested !== 'object' || Array.isArray(nested)) throw new UnsupportedConfigError('vision_config', `expected an object, got ${JSON.stringify(nested)}`);
    return { keys: { ...HF_CLIP_VISION_DEFAULTS, ...(nested as Json) }, where: 'vision_config.' };
  }
  const tower = json.mm_vision_tower;
  // A local checkout of the tower keeps the hub repo's folder name, so match the last path component.
  const known = typeof tower === 'string' ? KNOWN_TOWERS[tower.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? ''] : undefined;
  if (!known) {
    throw new UnsupportedConfigError(
      'mm_vision_tower',
      `${JSON.stringify(tower)} is not a known CLIP tower and config.json has no vision_config (known: ${Object.keys(KNOWN_TOWERS).map((k) => `openai/${k}`).join(', ')})`,
    );
  }
  return { keys: { ...HF_CLIP_VISION_DEFAULTS, ...known }, where: `mm_vision_tower(${tower}).` };
}

/**
 * Read the vision side of a LLaVA-Mini config.json (or a standalone Hugging Face CLIP vision
 * config.json, model_type `clip_vision_model`), with LLaVA's defaults for absent keys
 * (`mm_vision_select_layer` -2, `mm_vision_select_feature` 'patch', `resolution_ratio` 1, and
 * square preprocessing when `image_aspect_ratio` is not 'pad', as `process_images` does).
 */
export function readVisionConfig(json: Json): VisionConfig {
  if (json === null || typeof json !== 'object') throw new UnsupportedConfigError('config', `expected a JSON object, got ${JSON.stringify(json)}`);
  const { keys, where } = visionKeys(json);
  const hiddenSize = int(keys, 'hidden_size', where);
  const numHeads = int(keys, 'num_attention_heads', where);
  const numLayers = int(keys, 'num_hidden_layers', where);
  const imageSize = int(keys, 'image_size', where);
  const patchSize = int(keys, 'patch_size', where);
  if (hiddenSize % numHeads !== 0) throw new UnsupportedConfigError(`${where}num_attention_heads`, `${numHeads} does not divide hidden_size ${hiddenSize}`);
  if (patchSize > imageSize) throw new UnsupportedConfigError(`${where}patch_size`, `${patchSize} is larger than image_size ${imageSize}`);
  if (keys.hidden_act !== 'quick_gelu') throw new UnsupportedConfigError(`${where}hidden_act`, `only quick_gelu (CLIP's activation) is supported, got ${JSON.stringify(keys.hidden_act)}`);
  if (keys.num_channels !== 3) throw new UnsupportedConfigError(`${where}num_channels`, `only RGB (3) is supported, got ${JSON.stringify(keys.num_channels)}`);
  const eps = keys.layer_norm_eps;
  if (typeof eps !== 'number' || !(eps > 0)) throw new UnsupportedConfigError(`${where}layer_norm_eps`, `expected a positive number, got ${JSON.stringify(eps)}`);

  const selectLayer = json.mm_vision_select_layer ?? -2;
  // hidden_states has numLayers + 1 entries: [0] is the pre_layrnorm output, [k] the output of block k.
  if (typeof selectLayer !== 'number' || !Number.isInteger(selectLayer) || selectLayer < -(numLayers + 1) || selectLayer > numLayers) {
    throw new UnsupportedConfigError('mm_vision_select_layer', `must be an integer in [${-(numLayers + 1)}, ${numLayers}] for a ${numLayers}-layer tower, got ${JSON.stringify(json.mm_vision_select_layer)}`);
  }
  const blocks = selectLayer < 0 ? numLayers + 1 + selectLayer : selectLayer;

  const selectFeature = json.mm_vision_select_feature ?? 'patch';
  if (selectFeature !== 'patch' && selectFeature !== 'cls_patch') {
    throw new UnsupportedConfigError('mm_vision_select_feature', `must be 'patch' or 'cls_patch', got ${JSON.stringify(selectFeature)}`);
  }
  const aspect = json.image_aspect_ratio;
  if (typeof aspect === 'string' && aspect.startsWith('anyres')) {
    throw new UnsupportedConfigError('image_aspect_ratio', `LLaVA-NeXT's ${JSON.stringify(aspect)} tiling is not part of LLaVA-Mini (use 'pad' or 'square')`);
  }
  const resolutionRatio = json.resolution_ratio ?? 1;
  if (typeof resolutionRatio !== 'number' || !Number.isSafeInteger(resolutionRatio) || resolutionRatio < 1) {
    throw new UnsupportedConfigError('resolution_ratio', `expected a positive integer, got ${JSON.stringify(resolutionRatio)}`);
  }

  const gridSize = Math.floor(imageSize / patchSize);
  return {
    hiddenSize,
    intermediateSize: int(keys, 'intermediate_size', where),
    numLayers,
    numHeads,
    headDim: hiddenSize / numHeads,
    imageSize,
    patchSize,
    gridSize,
    layerNormEps: eps,
    selectLayer,
    blocks,
    selectFeature,
    tokens: gridSize * gridSize + (selectFeature === 'cls_patch' ? 1 : 0),
    imageAspectRatio: aspect === 'pad' ? 'pad' : 'square',
    resolutionRatio,
  };
}
