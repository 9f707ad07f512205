import type { Resolved } from './options.js';

/** The transformers release LLaVA-Mini pins; written where transformers would stamp its version. */
export const TRANSFORMERS_VERSION = '4.43.1';

/** Keys whose values transformers stores as Python floats (so they print as `1e-05`, `8.0`, ...). */
export const FLOAT_KEYS: ReadonlySet<string> = new Set([
  'rms_norm_eps',
  'rope_theta',
  'attention_dropout',
  'initializer_range',
  'initializer_factor',
  'dropout',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'layer_norm_eps',
]);

export interface SpecialIds {
  bos: number;
  /** end_of_text, eom, eot: Llama-3.1's generation stop list (whichever of them the tokenizer has). */
  eos: number[];
  vocabSize: number;
}

/** The CLIP vision config, in the keys HF's CLIPVisionConfig uses. */
export function visionConfig(o: Resolved): Record<string, unknown> {
  return {
    hidden_size: o.visionHiddenSize,
    intermediate_size: o.visionIntermediateSize,
    num_hidden_layers: o.visionLayers,
    num_attention_heads: o.visionHeads,
    image_size: o.imageSize,
    patch_size: o.patchSize,
    layer_norm_eps: 1e-5,
    hidden_act: 'quick_gelu',
    num_channels: 3,
    model_type: 'clip_vision_model',
  };
}

/**
 * config.json of a LLaVA-Mini checkpoint: the keys a transformers 4.43.1 LlamaConfig plus LLaVA's
 * training arguments produce (spec §4.1, §7.3). `vision_config` and `compressor_num_heads` are ours:
 * the release has neither (it loads CLIP from the hub and hard-codes 8 heads), and a tiny model
 * needs both to be self-describing.
 */
export function llavaMiniConfig(o: Resolved, ids: SpecialIds): Record<string, unknown> {
  return {
    architectures: ['LlavaMiniLlamaForCausalLM'],
    model_type: 'llava_mini_llama',
    hidden_size: o.hiddenSize,
    intermediate_size: o.intermediateSize,
    num_hidden_layers: o.numHiddenLayers,
    num_attention_heads: o.numAttentionHeads,
    num_key_value_heads: o.numKeyValueHeads,
    head_dim: o.hiddenSize / o.numAttentionHeads,
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_theta: o.ropeTheta,
    rope_scaling: o.ropeScaling === null ? null : { ...o.ropeScaling },
    max_position_embeddings: o.maxPositionEmbeddings,
    vocab_size: ids.vocabSize,
    tie_word_embeddings: o.tieWordEmbeddings,
    attention_bias: false,
    attention_dropout: 0.0,
    mlp_bias: false,
    initializer_range: 0.02,
    pretraining_tp: 1,
    bos_token_id: ids.bos,
    eos_token_id: [...ids.eos],
    torch_dtype: o.dtype,
    transformers_version: TRANSFORMERS_VERSION,
    use_cache: true,
    compressor_size: o.compressorSize,
    prefusion_layer_num: o.prefusionLayers,
    resolution_ratio: o.resolutionRatio,
    mm_vision_tower: 'openai/clip-vit-large-patch14-336',
    mm_vision_select_layer: -2,
    mm_vision_select_feature: 'patch',
    mm_projector_type: 'mlp2x_gelu',
    mm_hidden_size: o.visionHiddenSize,
    image_aspect_ratio: o.imageAspectRatio,
    mm_use_im_start_end: false,
    mm_use_im_patch_token: false,
    mm_patch_merge_type: 'flat',
    tokenizer_model_max_length: o.tokenizerModelMaxLength,
    tokenizer_padding_side: 'right',
    freeze_mm_mlp_adapter: false,
    tune_mm_mlp_adapter: false,
    use_mm_proj: true,
    mm_projector_lr: null,
    vision_config: visionConfig(o),
    compressor_num_heads: o.compressorHeads,
  };
}

/** generation_config.json as transformers derives it from the model config (spec §4.1: 155 bytes for the release). */
export function generationConfig(ids: SpecialIds): Record<string, unknown> {
  return {
    _from_model_config: true,
    bos_token_id: ids.bos,
    eos_token_id: [...ids.eos],
    transformers_version: TRANSFORMERS_VERSION,
  };
}

/** config.json of a standalone `CLIPVisionModel` folder (what `save_pretrained` of the vision half writes, trimmed). */
export function clipConfig(o: Resolved): Record<string, unknown> {
  return {
    architectures: ['CLIPVisionModel'],
    attention_dropout: 0.0,
    dropout: 0.0,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    torch_dtype: o.visionDtype,
    transformers_version: TRANSFORMERS_VERSION,
    ...visionConfig(o),
  };
}

/**
 * preprocessor_config.json in the legacy layout of openai/clip-vit-large-patch14-336 (integer `size`
 * and `crop_size`, `CLIPFeatureExtractor`), which is what a runtime meets when it reads the real folder.
 */
export function clipPreprocessorConfig(o: Resolved): Record<string, unknown> {
  return {
    crop_size: o.imageSize,
    do_center_crop: true,
    do_normalize: true,
    do_resize: true,
    feature_extractor_type: 'CLIPFeatureExtractor',
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    resample: 3,
    size: o.imageSize,
  };
}
