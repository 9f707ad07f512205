import { UnsupportedConfigError } from '@llava-mini/core';
import { describe, expect, it } from 'vitest';
import { readVisionConfig } from '../src/index.js';

/** The LLaVA-Mini keys of a release-like config.json (spec §7.3), without our vision_config. */
const RELEASE = {
  model_type: 'llava_mini_llama',
  hidden_size: 4096,
  mm_vision_tower: 'openai/clip-vit-large-patch14-336',
  mm_vision_select_layer: -2,
  mm_vision_select_feature: 'patch',
  mm_hidden_size: 1024,
  image_aspect_ratio: 'pad',
  resolution_ratio: 1,
};
const VISION = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 2, image_size: 56, patch_size: 14, layer_norm_eps: 1e-5, hidden_act: 'quick_gelu', num_channels: 3 };

function key(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UnsupportedConfigError);
    return (err as UnsupportedConfigError).key;
  }
  throw new Error('expected an UnsupportedConfigError');
}

describe('readVisionConfig', () => {
  it('falls back to the known CLIP ViT-L/14-336 values named by mm_vision_tower (the release has no vision_config)', () => {
    const c = readVisionConfig(RELEASE);
    expect(c).toMatchObject({ hiddenSize: 1024, intermediateSize: 4096, numLayers: 24, numHeads: 16, headDim: 64, imageSize: 336, patchSize: 14, gridSize: 24 });
    expect(c).toMatchObject({ layerNormEps: 1e-5, selectLayer: -2, blocks: 23, selectFeature: 'patch', tokens: 576, imageAspectRatio: 'pad', resolutionRatio: 1 });
    // A local checkout of the tower keeps the folder name.
    expect(readVisionConfig({ ...RELEASE, mm_vision_tower: '/models/clip-vit-large-patch14-336/' }).imageSize).toBe(336);
  });

  it('an unknown tower without vision_config names mm_vision_tower', () => {
    expect(key(() => readVisionConfig({ ...RELEASE, mm_vision_tower: 'google/siglip-so400m-patch14-384' }))).toBe('mm_vision_tower');
    expect(key(() => readVisionConfig({ model_type: 'llava_mini_llama' }))).toBe('mm_vision_tower');
  });

  it('reads vision_config when present, with transformers defaults for keys it omits', () => {
    const c = readVisionConfig({ ...RELEASE, vision_config: VISION });
    expect(c).toMatchObject({ hiddenSize: 32, numLayers: 3, numHeads: 2, headDim: 16, imageSize: 56, gridSize: 4, blocks: 2, tokens: 16 });
    const sparse = readVisionConfig({ vision_config: { hidden_size: 64, num_attention_heads: 4 } });
    expect(sparse).toMatchObject({ hiddenSize: 64, intermediateSize: 3072, numLayers: 12, imageSize: 224, patchSize: 32, gridSize: 7, layerNormEps: 1e-5 });
  });

  it('reads a standalone CLIP vision config (keys at the top level, LLaVA defaults)', () => {
    const c = readVisionConfig({ model_type: 'clip_vision_model', architectures: ['CLIPVisionModel'], ...VISION });
    expect(c).toMatchObject({ hiddenSize: 32, selectLayer: -2, blocks: 2, selectFeature: 'patch', imageAspectRatio: 'square', resolutionRatio: 1 });
  });

  it('select layer: in [-(L+1), L], counted in hidden_states', () => {
    const at = (mm_vision_select_layer: number) => readVisionConfig({ ...RELEASE, mm_vision_select_layer });
    expect(at(-1).blocks).toBe(24);
    expect(at(-25).blocks).toBe(0);
    expect(at(12).blocks).toBe(12);
    expect(key(() => at(-26))).toBe('mm_vision_select_layer');
    expect(key(() => at(25))).toBe('mm_vision_select_layer');
    expect(key(() => at(1.5))).toBe('mm_vision_select_layer');
  });

  it("select feature: 'cls_patch' keeps CLS, others are refused", () => {
    expect(readVisionConfig({ ...RELEASE, mm_vision_select_feature: 'cls_patch' }).tokens).toBe(577);
    expect(key(() => readVisionConfig({ ...RELEASE, mm_vision_select_feature: 'cls' }))).toBe('mm_vision_select_feature');
  });

  it("aspect ratio: 'pad' pads; absent, 'square' or anything else is square (process_images' else branch); anyres is refused", () => {
    const mode = (image_aspect_ratio: unknown) => readVisionConfig({ ...RELEASE, image_aspect_ratio }).imageAspectRatio;
    expect(mode('pad')).toBe('pad');
    expect(mode('square')).toBe('square');
    expect(mode(undefined)).toBe('square');
    expect(mode('resize')).toBe('square');
    expect(key(() => mode('anyres_max_9'))).toBe('image_aspect_ratio');
  });

  it('resolution_ratio must be a positive integer', () => {
    expect(readVisionConfig({ ...RELEASE, resolution_ratio: 2 }).resolutionRatio).toBe(2);
    expect(key(() => readVisionConfig({ ...RELEASE, resolution_ratio: 0 }))).toBe('resolution_ratio');
  });

  it('refuses what the graph does not implement', () => {
    expect(key(() => readVisionConfig({ ...RELEASE, vision_config: { ...VISION, hidden_act: 'gelu' } }))).toBe('vision_config.hidden_act');
    expect(key(() => readVisionConfig({ ...RELEASE, vision_config: { ...VISION, num_attention_heads: 3 } }))).toBe('vision_config.num_attention_heads');
    expect(key(() => readVisionConfig({ ...RELEASE, vision_config: { ...VISION, num_channels: 1 } }))).toBe('vision_config.num_channels');
    expect(key(() => readVisionConfig({ ...RELEASE, vision_config: { ...VISION, hidden_size: -4 } }))).toBe('vision_config.hidden_size');
    expect(key(() => readVisionConfig({ ...RELEASE, vision_config: 'clip' }))).toBe('vision_config');
  });
});
