// A synthetic checkpoint in the exact layout of ICTNLP/llava-mini-llama-3.1-8b (spec §7): the 732
// tensor names, the config keys, the dtypes (16-bit LLM side, fp32 CLIP), sharded with an index;
// only the widths are small. It must convert and answer, and a tensor too many or too few is named.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointMismatchError } from '@llava-mini/core';
import { Checkpoint, writeCheckpoint } from '@llava-mini/core/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, LlavaMini } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-release-layout-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');

/** Spec §7.1's table, written out independently of the code that writes or reads checkpoints. */
function releaseNames(): string[] {
  const names = ['model.embed_tokens.weight', 'lm_head.weight', 'model.norm.weight'];
  const llama = ['input_layernorm', 'post_attention_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
  for (let i = 0; i < 32; i++) for (const t of llama) names.push(`model.layers.${i}.${t}.weight`);
  for (let i = 0; i < 4; i++) for (const t of llama) names.push(`model.prefusion_layers.${i}.${t}.weight`);
  for (const t of ['0.weight', '0.bias', '2.weight', '2.bias']) names.push(`model.mm_projector.${t}`);
  for (const t of ['query', 'pos_embed', 'attn.in_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight', 'attn.out_proj.bias', 'ln_q.weight', 'ln_q.bias', 'ln_kv.weight', 'ln_kv.bias']) {
    names.push(`model.compressor.${t}`);
  }
  const v = 'model.vision_tower.vision_tower.vision_model.';
  names.push(`${v}embeddings.class_embedding`, `${v}embeddings.patch_embedding.weight`, `${v}embeddings.position_embedding.weight`);
  names.push(`${v}pre_layrnorm.weight`, `${v}pre_layrnorm.bias`, `${v}post_layernorm.weight`, `${v}post_layernorm.bias`);
  for (let i = 0; i < 24; i++) {
    for (const t of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'layer_norm1', 'layer_norm2', 'mlp.fc1', 'mlp.fc2']) {
      names.push(`${v}encoder.layers.${i}.${t}.weight`, `${v}encoder.layers.${i}.${t}.bias`);
    }
  }
  return names.sort();
}

/** The config keys spec §4.1 and §7.3 name, with the release's values where they are known. */
const RELEASE_CONFIG: Record<string, unknown> = {
  architectures: ['LlavaMiniLlamaForCausalLM'],
  model_type: 'llava_mini_llama',
  hidden_act: 'silu',
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  max_position_embeddings: 131072,
  tie_word_embeddings: false,
  attention_bias: false,
  mlp_bias: false,
  compressor_size: 1,
  prefusion_layer_num: 4,
  resolution_ratio: 1,
  mm_vision_tower: 'openai/clip-vit-large-patch14-336',
  mm_vision_select_layer: -2,
  mm_vision_select_feature: 'patch',
  mm_projector_type: 'mlp2x_gelu',
  mm_use_im_start_end: false,
  mm_use_im_patch_token: false,
  mm_patch_merge_type: 'flat',
  tokenizer_padding_side: 'right',
};
const RELEASE_SHAPE_KEYS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'vocab_size', 'bos_token_id', 'eos_token_id', 'mm_hidden_size', 'image_aspect_ratio', 'tokenizer_model_max_length'];

let hf: string;

/** A copy of the release-layout checkpoint with its tensors edited and/or its config changed. */
function variant(name: string, edit: { drop?: string[]; add?: string[]; config?: Record<string, unknown> }): string {
  const dir = path.join(root, name);
  fs.cpSync(hf, dir, { recursive: true });
  if (edit.drop || edit.add) {
    const cp = Checkpoint.open(hf);
    const keep = cp.names.filter((n) => !edit.drop?.includes(n));
    const tensors = keep.map((n) => ({ ...cp.read(n), name: n })).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.dims, data: t.data }));
    for (const n of edit.add ?? []) tensors.push({ name: n, dtype: 'bfloat16', shape: [64], data: new Uint16Array(64) });
    cp.close();
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.safetensors') || f.endsWith('.index.json')) fs.rmSync(path.join(dir, f));
    writeCheckpoint(dir, tensors, { maxShardBytes: 1_000_000 });
  }
  if (edit.config) {
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), ...edit.config }));
  }
  return dir;
}

beforeAll(async () => {
  hf = path.join(root, 'hf');
  await writeTinyCheckpoint(hf, {
    numHiddenLayers: 32,
    prefusionLayers: 4,
    visionLayers: 24,
    compressorHeads: 8, // the release's hard-coded head count, so the config needs no compressor_num_heads
    dtype: 'bfloat16',
    visionDtype: 'float32',
    maxShardBytes: 1_000_000,
    std: 0.3,
  });
  // The release's config has no compressor_num_heads; vision_config stays, because with no
  // vision_config the runtime takes CLIP-L's real sizes from mm_vision_tower (checked below).
  const file = path.join(hf, 'config.json');
  const { compressor_num_heads: _, ...config } = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
});

describe('the release checkpoint layout (spec §7), small shapes', () => {
  it('has exactly the 732 tensor names, the config keys and the dtypes of the release', () => {
    const cp = Checkpoint.open(hf);
    try {
      expect(cp.names.length).toBe(732);
      expect([...cp.names].sort()).toEqual(releaseNames());
      for (const n of cp.names) expect([n, cp.info(n).dtype]).toEqual([n, n.includes('vision_tower') ? 'float32' : 'bfloat16']);
    } finally {
      cp.close();
    }
    expect(fs.existsSync(path.join(hf, 'model.safetensors.index.json'))).toBe(true);
    const config = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8'));
    expect(config).toMatchObject(RELEASE_CONFIG);
    for (const key of RELEASE_SHAPE_KEYS) expect(config).toHaveProperty(key);
    expect(config.num_hidden_layers).toBe(32);
  });

  it('converts and answers, as the same checkpoint converted in memory does', async () => {
    const out = path.join(root, 'onnx');
    const manifest = await convertCheckpoint(hf, out);
    expect(manifest.stages.llm.dtype).toBe('fp32');
    const answers = [];
    for (const dir of [out, hf]) {
      const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
      answers.push((await model.ask(IMAGE, 'What is in this picture?', { maxNewTokens: 4 }).done()).ids);
      await model.dispose();
    }
    expect(answers[0].length).toBeGreaterThan(0);
    expect(answers[0]).toEqual(answers[1]);
  });

  it('a config with fewer layers than the weights: CHECKPOINT_MISMATCH naming the unused tensors, nothing written', async () => {
    const dir = variant('fewer-layers', { config: { num_hidden_layers: 30 } });
    const out = path.join(root, 'fewer-onnx');
    const err = await convertCheckpoint(dir, out).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    expect(err.message).toMatch(/has 18 tensor\(s\) its config.json does not use: model\.layers\.30\.input_layernorm\.weight, /);
    expect(err.message).toMatch(/the weights have 32 model\.layers \(config num_hidden_layers: 30\)/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(root).filter((f) => f.includes('partial'))).toEqual([]);
    // In-memory loading checks the same.
    await expect(LlavaMini.fromPretrained(dir, { device: 'cpu' })).rejects.toThrow(/does not use: model\.layers\.30\./);
  });

  it('an extra or a missing tensor is named', async () => {
    const extra = variant('extra', { add: ['model.image_newline'] });
    await expect(convertCheckpoint(extra, path.join(root, 'extra-onnx'))).rejects.toThrow(/has 1 tensor\(s\) its config.json does not use: model\.image_newline$/);
    const missing = variant('missing', { drop: ['model.layers.7.mlp.down_proj.weight'] });
    await expect(convertCheckpoint(missing, path.join(root, 'missing-onnx'))).rejects.toThrow(/lacks 1 tensor\(s\) its config.json needs: model\.layers\.7\.mlp\.down_proj\.weight$/);
    // Without vision_config the release's own config means CLIP ViT-L/14-336: the small CLIP is a shape mismatch.
    const noVision = variant('no-vision-config', { config: { vision_config: undefined } });
    await expect(convertCheckpoint(noVision, path.join(root, 'no-vision-onnx'))).rejects.toThrow(/vision_model\.embeddings\.patch_embedding\.weight' has shape \[32, 3, 14, 14\], but .* implies \[1024, 3, 14, 14\]/);
  });
});
