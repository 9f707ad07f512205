import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '@llava-mini/core/node';
import { describe, expect, it } from 'vitest';
import { tinyTensorShapes, writeTinyCheckpoint, writeTinyClip, type TinyOptions } from '../src/index.js';
import { readJson, tempDir } from './helpers.js';

const CLIP = 'model.vision_tower.vision_tower.vision_model.';

/** The spec §7.1 key list, spelled out independently of the package's own shape code. */
function expectedShapes(o: Required<Pick<TinyOptions, 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads' | 'numKeyValueHeads' | 'visionHiddenSize' | 'visionIntermediateSize' | 'visionLayers' | 'imageSize' | 'patchSize' | 'compressorSize' | 'prefusionLayers'>> & { vocab: number; tied: boolean; vision: boolean }): Map<string, number[]> {
  const H = o.hiddenSize;
  const I = o.intermediateSize;
  const hd = H / o.numAttentionHeads;
  const Dv = o.visionHiddenSize;
  const Iv = o.visionIntermediateSize;
  const p = o.patchSize;
  const P = (o.imageSize / p) ** 2;
  const C2 = o.compressorSize ** 2;
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [o.vocab, H]);
  if (!o.tied) m.set('lm_head.weight', [o.vocab, H]);
  m.set('model.norm.weight', [H]);
  const layer = (pre: string) => {
    m.set(`${pre}.input_layernorm.weight`, [H]);
    m.set(`${pre}.post_attention_layernorm.weight`, [H]);
    m.set(`${pre}.self_attn.q_proj.weight`, [o.numAttentionHeads * hd, H]);
    m.set(`${pre}.self_attn.k_proj.weight`, [o.numKeyValueHeads * hd, H]);
    m.set(`${pre}.self_attn.v_proj.weight`, [o.numKeyValueHeads * hd, H]);
    m.set(`${pre}.self_attn.o_proj.weight`, [H, o.numAttentionHeads * hd]);
    m.set(`${pre}.mlp.gate_proj.weight`, [I, H]);
    m.set(`${pre}.mlp.up_proj.weight`, [I, H]);
    m.set(`${pre}.mlp.down_proj.weight`, [H, I]);
  };
  for (let i = 0; i < o.numHiddenLayers; i++) layer(`model.layers.${i}`);
  for (let i = 0; i < o.prefusionLayers; i++) layer(`model.prefusion_layers.${i}`);
  m.set('model.mm_projector.0.weight', [H, Dv]);
  m.set('model.mm_projector.0.bias', [H]);
  m.set('model.mm_projector.2.weight', [H, H]);
  m.set('model.mm_projector.2.bias', [H]);
  m.set('model.compressor.query', [C2, Dv]);
  m.set('model.compressor.pos_embed', [C2, Dv]);
  m.set('model.compressor.attn.in_proj_weight', [3 * Dv, Dv]);
  m.set('model.compressor.attn.in_proj_bias', [3 * Dv]);
  m.set('model.compressor.attn.out_proj.weight', [Dv, Dv]);
  m.set('model.compressor.attn.out_proj.bias', [Dv]);
  for (const ln of ['ln_q', 'ln_kv']) {
    m.set(`model.compressor.${ln}.weight`, [Dv]);
    m.set(`model.compressor.${ln}.bias`, [Dv]);
  }
  if (o.vision) {
    m.set(`${CLIP}embeddings.class_embedding`, [Dv]);
    m.set(`${CLIP}embeddings.patch_embedding.weight`, [Dv, 3, p, p]);
    m.set(`${CLIP}embeddings.position_embedding.weight`, [P + 1, Dv]);
    for (const ln of ['pre_layrnorm', 'post_layernorm']) {
      m.set(`${CLIP}${ln}.weight`, [Dv]);
      m.set(`${CLIP}${ln}.bias`, [Dv]);
    }
    for (let i = 0; i < o.visionLayers; i++) {
      const pre = `${CLIP}encoder.layers.${i}.`;
      for (const proj of ['q', 'k', 'v', 'out']) {
        m.set(`${pre}self_attn.${proj}_proj.weight`, [Dv, Dv]);
        m.set(`${pre}self_attn.${proj}_proj.bias`, [Dv]);
      }
      for (const ln of ['layer_norm1', 'layer_norm2']) {
        m.set(`${pre}${ln}.weight`, [Dv]);
        m.set(`${pre}${ln}.bias`, [Dv]);
      }
      m.set(`${pre}mlp.fc1.weight`, [Iv, Dv]);
      m.set(`${pre}mlp.fc1.bias`, [Iv]);
      m.set(`${pre}mlp.fc2.weight`, [Dv, Iv]);
      m.set(`${pre}mlp.fc2.bias`, [Dv]);
    }
  }
  return m;
}

const DEFAULTS = {
  hiddenSize: 64,
  intermediateSize: 128,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  visionHiddenSize: 32,
  visionIntermediateSize: 64,
  visionLayers: 3,
  imageSize: 336,
  patchSize: 14,
  compressorSize: 1,
  prefusionLayers: 2,
};

function readBack(dir: string): Map<string, { shape: number[]; dtype: string }> {
  const cp = Checkpoint.open(dir);
  try {
    return new Map(cp.names.map((n) => [n, { shape: cp.info(n).shape, dtype: cp.info(n).dtype }]));
  } finally {
    cp.close();
  }
}

describe('writeTinyCheckpoint: names, shapes, dtypes', () => {
  const cases: { label: string; options: TinyOptions; shards: boolean }[] = [
    { label: 'defaults (C=1, untied, GQA), one file', options: {}, shards: false },
    { label: 'C=2, tied, MHA, sharded', options: { compressorSize: 2, tieWordEmbeddings: true, numKeyValueHeads: 4, maxShardBytes: 40_000 }, shards: true },
    {
      label: 'odd sizes, 1 kv head, 3 prefusion layers, small image, no vision',
      options: { hiddenSize: 48, intermediateSize: 80, numHiddenLayers: 3, numAttentionHeads: 6, numKeyValueHeads: 1, prefusionLayers: 3, imageSize: 56, includeVision: false },
      shards: false,
    },
    { label: 'C=3, fp16 LLM, bf16 CLIP, sharded', options: { compressorSize: 3, imageSize: 28, dtype: 'float16', visionDtype: 'bfloat16', maxShardBytes: 20_000 }, shards: true },
  ];

  for (const { label, options, shards } of cases) {
    it(label, async () => {
      const dir = tempDir('shapes');
      const out = await writeTinyCheckpoint(dir, options);
      const expected = expectedShapes({
        ...DEFAULTS,
        ...(options as typeof DEFAULTS),
        vocab: out.vocabSize,
        tied: options.tieWordEmbeddings === true,
        vision: options.includeVision !== false,
      });

      expect(out.tensorNames).toEqual([...expected.keys()].sort());
      expect(new Map([...tinyTensorShapes(out.config, { includeVision: options.includeVision })])).toEqual(expected);

      const layers = options.numHiddenLayers ?? 2;
      const prefusion = options.prefusionLayers ?? 2;
      expect(out.tensorNames.filter((n) => n.startsWith('model.layers.'))).toHaveLength(9 * layers);
      expect(out.tensorNames.filter((n) => n.startsWith('model.prefusion_layers.'))).toHaveLength(9 * prefusion);
      expect(out.tensorNames.some((n) => n.startsWith('model.vision_tower.'))).toBe(options.includeVision !== false);

      expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(shards);
      expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(!shards);
      const stored = readBack(dir);
      expect(new Map([...stored].map(([n, t]) => [n, t.shape]))).toEqual(expected);
      for (const [name, t] of stored) {
        const want = name.startsWith('model.vision_tower.') ? (options.visionDtype ?? 'float32') : (options.dtype ?? 'float32');
        expect(t.dtype, name).toBe(want);
      }
      if (shards) {
        const index = readJson(path.join(dir, 'model.safetensors.index.json')) as { weight_map: Record<string, string> };
        expect(Object.keys(index.weight_map)).toEqual(out.tensorNames);
        expect(new Set(Object.values(index.weight_map)).size).toBeGreaterThan(1);
      }
      for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
        expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
      }
    });
  }

  it('counts the release layout: 732 tensors for the 8B config (shapes only, nothing written)', () => {
    const config = {
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 128256,
      tie_word_embeddings: false,
      mm_hidden_size: 1024,
      compressor_size: 1,
      prefusion_layer_num: 4,
      vision_config: { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, image_size: 336, patch_size: 14 },
    };
    const shapes = tinyTensorShapes(config);
    expect(shapes.size).toBe(732);
    expect(shapes.get('model.layers.31.self_attn.k_proj.weight')).toEqual([1024, 4096]);
    expect(shapes.get(`${CLIP}embeddings.position_embedding.weight`)).toEqual([577, 1024]);
    expect(shapes.get('model.compressor.attn.in_proj_weight')).toEqual([3072, 1024]);
  });

  it('rewriting a folder replaces old shards with a single file', async () => {
    const dir = tempDir('rewrite');
    await writeTinyCheckpoint(dir, { maxShardBytes: 30_000 });
    expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).toBe(true);
    await writeTinyCheckpoint(dir);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.index.json'))).toEqual(['model.safetensors']);
  });
});

describe('writeTinyClip', () => {
  it('writes a CLIPVisionModel folder whose tensors equal the tower inside the checkpoint', async () => {
    const options: TinyOptions = { seed: 7, visionLayers: 2, imageSize: 28, visionDtype: 'float16' };
    const clipDir = tempDir('clip');
    const llavaDir = tempDir('llava');
    const clip = await writeTinyClip(clipDir, options);
    await writeTinyCheckpoint(llavaDir, options);

    expect(clip.config).toMatchObject({ model_type: 'clip_vision_model', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, image_size: 28, patch_size: 14, layer_norm_eps: 1e-5, hidden_act: 'quick_gelu', num_channels: 3 });
    expect(readJson(path.join(clipDir, 'config.json'))).toEqual(clip.config);
    expect(readJson(path.join(clipDir, 'preprocessor_config.json'))).toMatchObject({ crop_size: 28, size: 28, resample: 3 });
    expect(clip.tensorNames.every((n) => n.startsWith('vision_model.'))).toBe(true);
    expect(clip.tensorNames).toHaveLength(5 + 16 * 2 + 2);

    const a = Checkpoint.open(clipDir);
    const b = Checkpoint.open(llavaDir);
    try {
      for (const name of clip.tensorNames) {
        const inner = `model.vision_tower.vision_tower.${name}`;
        expect(a.info(name).dtype).toBe('float16');
        expect(Buffer.from(a.read(name).data.buffer)).toEqual(Buffer.from(b.read(inner).data.buffer));
      }
    } finally {
      a.close();
      b.close();
    }
  });
});
