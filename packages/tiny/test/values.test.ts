import { bf16BitsToF32, f16BitsToF32, mulberry32 } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { describe, expect, it } from 'vitest';
import { sinCosPosEmbed, tensorValues, writeTinyCheckpoint } from '../src/index.js';
import { normals, streamSeed } from '../src/random.js';
import { folderBytes, tempDir } from './helpers.js';

const SMALL = { numHiddenLayers: 1, prefusionLayers: 1, visionLayers: 1, imageSize: 28 } as const;

function readAll(dir: string): Map<string, Float32Array> {
  const cp = Checkpoint.open(dir);
  try {
    return new Map(cp.names.map((n) => [n, cp.readFloat32(n)]));
  } finally {
    cp.close();
  }
}

function meanStd(x: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  const mean = s / x.length;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - mean) ** 2;
  return { mean, std: Math.sqrt(v / x.length) };
}

describe('determinism', () => {
  it('the same seed and options give byte-identical folders; another seed changes every weight file', async () => {
    const a = tempDir('det-a');
    const b = tempDir('det-b');
    const c = tempDir('det-c');
    await writeTinyCheckpoint(a, { ...SMALL, seed: 5, maxShardBytes: 50_000 });
    await writeTinyCheckpoint(b, { ...SMALL, seed: 5, maxShardBytes: 50_000 });
    await writeTinyCheckpoint(c, { ...SMALL, seed: 6, maxShardBytes: 50_000 });
    const fa = folderBytes(a);
    const fb = folderBytes(b);
    const fc = folderBytes(c);
    expect([...fa.keys()]).toEqual([...fb.keys()]);
    for (const [name, bytes] of fa) expect(bytes.equals(fb.get(name)!), name).toBe(true);

    const va = readAll(a);
    const vc = readAll(c);
    for (const [name, values] of va) {
      if (name === 'model.compressor.pos_embed') expect(vc.get(name)).toEqual(values);
      else expect(vc.get(name), name).not.toEqual(values);
    }
    // Config and tokenizer do not depend on the seed.
    expect(fa.get('config.json')!.equals(fc.get('config.json')!)).toBe(true);
  });

  it("a tensor's values depend only on (seed, name): changing the layer count or dropping CLIP leaves the rest alone", async () => {
    const two = tempDir('layers2');
    const three = tempDir('layers3');
    await writeTinyCheckpoint(two, { ...SMALL, numHiddenLayers: 2 });
    await writeTinyCheckpoint(three, { ...SMALL, numHiddenLayers: 3, includeVision: false, maxShardBytes: 40_000 });
    const v2 = readAll(two);
    const v3 = readAll(three);
    let shared = 0;
    for (const [name, values] of v3) {
      if (!v2.has(name)) continue;
      expect(values, name).toEqual(v2.get(name));
      shared++;
    }
    expect(shared).toBe(v3.size - 9);
    expect(v3.has('model.layers.2.mlp.up_proj.weight')).toBe(true);
    expect(v2.get('model.layers.0.self_attn.q_proj.weight')).not.toEqual(v2.get('model.layers.1.self_attn.q_proj.weight'));
  });

  it('the generator is pinned: these numbers must never change (other packages may rely on them)', () => {
    expect(streamSeed(0, 'a')).not.toBe(streamSeed(1, 'a'));
    expect(streamSeed(1, 'a')).not.toBe(streamSeed(2 ** 32 + 1, 'a'));
    const x = normals(12345, 4, 0, 1);
    expect([...normals(12345, 3, 0, 1)]).toEqual([...x.slice(0, 3)]);
    expect([...x]).toEqual([-0.0706480744263683, 0.18965467688493975, 0.4986071922145268, -1.0963042199711255]);
    // mulberry32(1)'s first output in the reference implementation is 0.6270739405881613 * 2^32.
    expect(mulberry32(1)() * 2 ** 32).toBe(2693262067);
    expect(streamSeed(0, 'model.norm.weight')).toBe(3590111626);
    expect([...Float32Array.from(tensorValues(0, 'model.norm.weight', [3], 0.02))]).toEqual([1.052195429801941, 0.7894946336746216, 0.8030791878700256]);
  });
});

describe('values', () => {
  it('initialises matrices with N(0, std), norm scales near 1, LayerNorm biases near 0', async () => {
    const dir = tempDir('init');
    await writeTinyCheckpoint(dir, { ...SMALL, std: 0.05 });
    const v = readAll(dir);
    const emb = meanStd(v.get('model.embed_tokens.weight')!);
    expect(Math.abs(emb.mean)).toBeLessThan(0.005);
    expect(emb.std).toBeGreaterThan(0.045);
    expect(emb.std).toBeLessThan(0.055);
    for (const name of ['model.norm.weight', 'model.layers.0.input_layernorm.weight', 'model.compressor.ln_q.weight', 'model.vision_tower.vision_tower.vision_model.pre_layrnorm.weight', 'model.vision_tower.vision_tower.vision_model.encoder.layers.0.layer_norm2.weight']) {
      const w = v.get(name)!;
      const s = meanStd(w);
      expect(Math.abs(s.mean - 1), name).toBeLessThan(0.1);
      expect(s.std, name).toBeGreaterThan(0.03);
      expect(w.some((x) => x === 1)).toBe(false);
    }
    const bias = meanStd(v.get('model.compressor.ln_kv.bias')!);
    expect(Math.abs(bias.mean)).toBeLessThan(0.1);
    expect(bias.std).toBeGreaterThan(0.03);
    // Linear biases use the weight std, not the LayerNorm one.
    expect(meanStd(v.get('model.mm_projector.0.bias')!).std).toBeLessThan(0.1);
  });

  it('pos_embed is the 2D sin-cos table of spec §2.1', async () => {
    const dv = 32;
    const q = dv / 4;
    const one = sinCosPosEmbed(1, dv);
    expect([...one]).toEqual([...Array(q).fill(0), ...Array(q).fill(1), ...Array(q).fill(0), ...Array(q).fill(1)]);

    const dir = tempDir('pos');
    await writeTinyCheckpoint(dir, { ...SMALL, compressorSize: 3, visionHiddenSize: dv });
    const cp = Checkpoint.open(dir);
    const stored = cp.readFloat32('model.compressor.pos_embed');
    cp.close();
    expect(stored).toHaveLength(9 * dv);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const row = (i * 3 + j) * dv;
        for (let k = 0; k < q; k++) {
          const w = 1 / 10000 ** (k / q);
          expect(stored[row + k]).toBe(Math.fround(Math.sin(j * w)));
          expect(stored[row + q + k]).toBe(Math.fround(Math.cos(j * w)));
          expect(stored[row + 2 * q + k]).toBe(Math.fround(Math.sin(i * w)));
          expect(stored[row + 3 * q + k]).toBe(Math.fround(Math.cos(i * w)));
        }
      }
    }
  });

  it('fp16 and bf16 files hold the float32 values rounded', async () => {
    const f16 = tempDir('f16');
    const bf16 = tempDir('bf16');
    await writeTinyCheckpoint(f16, { ...SMALL, dtype: 'float16', visionDtype: 'bfloat16' });
    await writeTinyCheckpoint(bf16, { ...SMALL, dtype: 'bfloat16' });
    const name = 'model.layers.0.mlp.down_proj.weight';
    const exact = Float32Array.from(tensorValues(0, name, [64, 128], 0.02));
    const a = Checkpoint.open(f16);
    const b = Checkpoint.open(bf16);
    try {
      const h = a.read(name).data as Uint16Array;
      const g = b.read(name).data as Uint16Array;
      for (let i = 0; i < exact.length; i++) {
        expect(Math.abs(f16BitsToF32(h[i]) - exact[i])).toBeLessThanOrEqual(Math.abs(exact[i]) * 2 ** -11 + 2 ** -25);
        expect(Math.abs(bf16BitsToF32(g[i]) - exact[i])).toBeLessThanOrEqual(Math.abs(exact[i]) * 2 ** -8);
      }
      expect(a.info('model.vision_tower.vision_tower.vision_model.post_layernorm.bias').dtype).toBe('bfloat16');
    } finally {
      a.close();
      b.close();
    }
  });
});
