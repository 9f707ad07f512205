import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError } from '@llava-mini/core';
import { describe, expect, it } from 'vitest';
import { writeTinyCheckpoint, writeTinyClip, type TinyOptions } from '../src/index.js';
import { pyFloat, pyJson } from '../src/json.js';
import { readJson, tempDir } from './helpers.js';

describe('option validation', () => {
  const bad: [TinyOptions, string][] = [
    [{ hiddenSize: 0 }, 'hiddenSize'],
    [{ hiddenSize: 63.5 }, 'hiddenSize'],
    [{ intermediateSize: -1 }, 'intermediateSize'],
    [{ numHiddenLayers: 0 }, 'numHiddenLayers'],
    [{ numAttentionHeads: 5 }, 'numAttentionHeads'],
    [{ numKeyValueHeads: 3 }, 'numKeyValueHeads'],
    [{ hiddenSize: 12, numAttentionHeads: 4, numKeyValueHeads: 1 }, 'head_dim'],
    [{ visionHeads: 3 }, 'visionHeads'],
    [{ compressorHeads: 3 }, 'compressorHeads'],
    [{ visionHiddenSize: 30, visionHeads: 2, compressorHeads: 2 }, 'visionHiddenSize'],
    [{ imageSize: 300 }, 'patchSize'],
    [{ patchSize: 0 }, 'patchSize'],
    [{ compressorSize: 0 }, 'compressorSize'],
    [{ prefusionLayers: 1.5 }, 'prefusionLayers'],
    [{ resolutionRatio: 0 }, 'resolutionRatio'],
    [{ seed: -1 }, 'seed'],
    [{ seed: 0.5 }, 'seed'],
    [{ std: 0 }, 'std'],
    [{ ropeTheta: Number.NaN }, 'ropeTheta'],
    [{ maxPositionEmbeddings: 0 }, 'maxPositionEmbeddings'],
    [{ maxShardBytes: 0 }, 'maxShardBytes'],
    [{ tokenizerModelMaxLength: 0 }, 'tokenizerModelMaxLength'],
    [{ ropeScaling: { rope_type: 'yarn' } as never }, 'ropeScaling.rope_type'],
    [{ ropeScaling: { rope_type: 'linear', factor: 0 } }, 'ropeScaling.factor'],
    [{ ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 } }, 'ropeScaling.high_freq_factor'],
    [{ dtype: 'int8' as never }, 'dtype'],
    [{ visionDtype: 'float64' as never }, 'visionDtype'],
    [{ imageAspectRatio: 'anyres' as never }, 'imageAspectRatio'],
    [{ tieWordEmbeddings: 'yes' as never }, 'tieWordEmbeddings'],
    [{ includeVision: 1 as never }, 'includeVision'],
    [{ tokenizer: 'llama' as never }, 'tokenizer'],
    [{ numLayers: 2 } as never, 'numLayers'],
  ];
  for (const [options, name] of bad) {
    it(`rejects ${JSON.stringify(options)} naming ${name}`, async () => {
      const dir = tempDir('bad');
      const err = await writeTinyCheckpoint(dir, options).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as InvalidOptionError).code).toBe('INVALID_OPTION');
      expect((err as Error).message).toContain(name);
      // Nothing is written for invalid options.
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  }

  it('writeTinyClip validates too', async () => {
    await expect(writeTinyClip(tempDir('badclip'), { visionHeads: 5 })).rejects.toBeInstanceOf(InvalidOptionError);
  });

  it('a tokenizer folder without the files is an InvalidOptionError', async () => {
    await expect(writeTinyCheckpoint(tempDir('badtok'), { tokenizer: { dir: tempDir('empty') } })).rejects.toThrow(InvalidOptionError);
  });
});

describe('config.json', () => {
  it('has the keys of spec §4.1/§7.3 (plus vision_config and compressor_num_heads), sorted, in transformers spelling', async () => {
    const dir = tempDir('config');
    const out = await writeTinyCheckpoint(dir, { ropeScaling: { rope_type: 'linear', factor: 2 }, imageAspectRatio: 'square', tokenizerModelMaxLength: null, dtype: 'bfloat16', compressorSize: 2, resolutionRatio: 2, compressorHeads: 8, visionLayers: 1, imageSize: 28 });
    const text = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
    expect(readJson(path.join(dir, 'config.json'))).toEqual(out.config);
    expect(text).toBe(pyJson(out.config, { floatKeys: new Set(['rms_norm_eps', 'rope_theta', 'attention_dropout', 'initializer_range', 'factor', 'layer_norm_eps']) }));
    const keys = Object.keys(out.config);
    expect(keys.filter((k) => !['vision_config', 'compressor_num_heads'].includes(k)).sort()).toEqual(
      [
        'architectures', 'model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim',
        'hidden_act', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'max_position_embeddings', 'vocab_size', 'tie_word_embeddings', 'attention_bias',
        'attention_dropout', 'mlp_bias', 'initializer_range', 'pretraining_tp', 'bos_token_id', 'eos_token_id', 'torch_dtype', 'transformers_version',
        'use_cache', 'compressor_size', 'prefusion_layer_num', 'resolution_ratio', 'mm_vision_tower', 'mm_vision_select_layer', 'mm_vision_select_feature',
        'mm_projector_type', 'mm_hidden_size', 'image_aspect_ratio', 'mm_use_im_start_end', 'mm_use_im_patch_token', 'mm_patch_merge_type',
        'tokenizer_model_max_length', 'tokenizer_padding_side', 'freeze_mm_mlp_adapter', 'tune_mm_mlp_adapter', 'use_mm_proj', 'mm_projector_lr',
      ].sort(),
    );
    expect(out.config).toMatchObject({
      architectures: ['LlavaMiniLlamaForCausalLM'],
      model_type: 'llava_mini_llama',
      head_dim: 16,
      rope_scaling: { rope_type: 'linear', factor: 2 },
      image_aspect_ratio: 'square',
      tokenizer_model_max_length: null,
      torch_dtype: 'bfloat16',
      compressor_size: 2,
      resolution_ratio: 2,
      compressor_num_heads: 8,
      mm_hidden_size: 32,
      mm_vision_select_layer: -2,
      vision_config: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, image_size: 28, patch_size: 14, layer_norm_eps: 1e-5, hidden_act: 'quick_gelu', num_channels: 3, model_type: 'clip_vision_model' },
    });
    expect('pad_token_id' in out.config).toBe(false);
    expect(text).toContain('"rms_norm_eps": 1e-05,');
    expect(text).toContain('"rope_theta": 500000.0,');
    expect(text).toContain('"attention_dropout": 0.0,');
    expect(text).toContain('"factor": 2.0,');
    expect(text).toContain('"mm_projector_lr": null,');
    expect(text.endsWith('}\n')).toBe(true);
  });

  it('the release generation_config.json would be the 155 bytes the spec measured', () => {
    const text = pyJson({ _from_model_config: true, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], transformers_version: '4.43.1' });
    expect(text.length).toBe(155);
  });

  it('formats floats like Python repr', () => {
    expect([1e-5, 0.02, 500000, 8, 0, 1e16, 1.5e-7, 123.25, 1e-4].map(pyFloat)).toEqual(['1e-05', '0.02', '500000.0', '8.0', '0.0', '1e+16', '1.5e-07', '123.25', '0.0001']);
    expect(pyJson({ b: 'é', a: [] }, { ensureAscii: true })).toBe('{\n  "a": [],\n  "b": "\\u00e9"\n}\n');
  });
});
