import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointMismatchError, Graph, InvalidOptionError, SessionError, type Tensor, type WeightSource } from '@llava-mini/core';
import { Checkpoint, writeCheckpoint } from '@llava-mini/core/node';
import { maxAbsDiff, seededFloats, testBackends } from '@llava-mini/core/testing';
import { refClipFeatures } from '@llava-mini/reference';
import { type TinyOptions, writeTinyCheckpoint, writeTinyClip } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEncoderGraph, encoderFromWeights, readVisionConfig, VisionEncoder, type VisionConfig } from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'encoder-graph-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// std 0.2 makes q.k large enough that attention is far from uniform, so a head-layout bug shows.
const CASES: { label: string; clip?: boolean; options: TinyOptions; json?: Record<string, unknown> }[] = [
  { label: 'D32 h2 L3 S56 (select -2: blocks 0..1)', options: { visionHiddenSize: 32, visionHeads: 2, visionLayers: 3, imageSize: 56, std: 0.2, seed: 1 } },
  { label: 'D32 h4 L2 S84 (select -2: block 0)', options: { visionHiddenSize: 32, visionHeads: 4, visionLayers: 2, visionIntermediateSize: 48, imageSize: 84, std: 0.2, seed: 2 } },
  { label: 'standalone CLIP D48 h4 L3 S42', clip: true, options: { visionHiddenSize: 48, visionHeads: 4, visionLayers: 3, imageSize: 42, std: 0.2, seed: 3 } },
  {
    label: 'select -1 with CLS kept (cls_patch)',
    options: { visionHiddenSize: 32, visionHeads: 2, visionLayers: 2, imageSize: 56, std: 0.2, seed: 4 },
    json: { mm_vision_select_layer: -1, mm_vision_select_feature: 'cls_patch' },
  },
];

interface Loaded {
  src: Checkpoint;
  vision: Record<string, unknown>;
  config: VisionConfig;
  prefix: string;
}
const loaded = new Map<string, Loaded>();

beforeAll(async () => {
  for (const [i, c] of CASES.entries()) {
    const dir = path.join(root, String(i));
    const written = c.clip ? await writeTinyClip(dir, c.options) : await writeTinyCheckpoint(dir, c.options);
    const json = { ...written.config, ...c.json };
    const vision = (c.clip ? written.config : written.config.vision_config) as Record<string, unknown>;
    const prefix = c.clip ? 'vision_model.' : 'model.vision_tower.vision_tower.vision_model.';
    loaded.set(c.label, { src: Checkpoint.open(dir), vision, config: readVisionConfig(json), prefix });
  }
});
afterAll(() => loaded.forEach((l) => l.src.close()));

function reference(l: Loaded, pixels: Float32Array, pieces: number): Float32Array {
  const per = 3 * l.config.imageSize * l.config.imageSize;
  const out = new Float32Array(pieces * l.config.tokens * l.config.hiddenSize);
  for (let p = 0; p < pieces; p++) {
    const f = refClipFeatures(l.src, l.vision, pixels.subarray(p * per, (p + 1) * per), {
      selectLayer: l.config.selectLayer,
      keepCls: l.config.selectFeature === 'cls_patch',
    });
    out.set(f, p * f.length);
  }
  return out;
}

const backends = await testBackends();

describe.each(backends)('CLIP graph on $label', ({ backend, device }) => {
  it.each(CASES.map((c) => c.label))('%s matches the reference (P = 3, max abs err <= 1e-4)', async (label) => {
    const l = loaded.get(label)!;
    const S = l.config.imageSize;
    const pixels = seededFloats(3 * 3 * S * S, 11, 2);
    const encoder = await encoderFromWeights(backend, l.src, { config: l.config, device });
    try {
      const got = await encoder.encode(pixels, 3);
      expect(got.length).toBe(3 * l.config.tokens * l.config.hiddenSize);
      const want = reference(l, pixels, 3);
      const err = maxAbsDiff(got, want);
      expect(err).toBeLessThanOrEqual(1e-4);
      // Not a vacuous comparison: the features vary and differ between pieces.
      expect(maxAbsDiff(want.subarray(0, want.length / 3), want.subarray(want.length / 3, (2 * want.length) / 3))).toBeGreaterThan(0.1);
    } finally {
      await encoder.dispose();
    }
  });

  it('a batched call equals one call per piece', async () => {
    const l = loaded.get(CASES[0].label)!;
    const S = l.config.imageSize;
    const pixels = seededFloats(3 * 3 * S * S, 5, 2);
    const encoder = await encoderFromWeights(backend, l.src, { config: l.config, device });
    try {
      const batched = await encoder.encode(pixels, 3);
      const per = 3 * S * S;
      const n = l.config.tokens * l.config.hiddenSize;
      for (let p = 0; p < 3; p++) {
        const single = await encoder.encode(pixels.slice(p * per, (p + 1) * per), 1);
        expect(maxAbsDiff(single, batched.subarray(p * n, (p + 1) * n))).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      await encoder.dispose();
    }
  });

  it('a float16 graph (fp16 I/O) stays within 2e-2 of the fp32 reference', async () => {
    const l = loaded.get(CASES[0].label)!;
    const S = l.config.imageSize;
    const pixels = seededFloats(2 * 3 * S * S, 9, 2);
    const encoder = await encoderFromWeights(backend, l.src, { config: l.config, device, format: { dtype: 'float16' } });
    try {
      expect(encoder.dtype).toBe('float16');
      const got = await encoder.encode(pixels, 2);
      const want = reference(l, pixels, 2);
      let scale = 0;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      // fp16 weights and activations: ~3 significant digits on features of magnitude `scale` (a few units).
      expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(2e-2);
      expect(scale).toBeGreaterThan(1);
    } finally {
      await encoder.dispose();
    }
  });
});

describe('graph construction', () => {
  it('reads only the blocks up to mm_vision_select_layer, never post_layernorm', () => {
    const l = loaded.get(CASES[0].label)!;
    const read = new Set<string>();
    const spy: WeightSource = { has: (n) => l.src.has(n), read: (n) => (read.add(n), l.src.read(n)) };
    buildEncoderGraph(spy, l.config);
    const p = l.prefix;
    expect(l.config.blocks).toBe(2);
    expect([...read].some((n) => n.startsWith(`${p}encoder.layers.1.`))).toBe(true);
    expect([...read].some((n) => n.startsWith(`${p}encoder.layers.2.`))).toBe(false);
    expect([...read].some((n) => n.includes('post_layernorm'))).toBe(false);
    expect(read.has(`${p}pre_layrnorm.weight`)).toBe(true);
  });

  it('declares pixel_values [pieces, 3, S, S] and image_features [pieces, g*g, D]', async () => {
    const { decodeModel } = await import('@llava-mini/core');
    const l = loaded.get(CASES[1].label)!;
    const model = decodeModel(buildEncoderGraph(l.src, l.config).toBytes());
    const dims = (v: { type: { tensor_type: { shape?: { dim: object[] } } } }) => v.type.tensor_type.shape!.dim.map((d) => ('dim_param' in d ? d.dim_param : (d as { dim_value: number }).dim_value));
    expect(model.graph.input.map((i) => i.name)).toEqual(['pixel_values']);
    expect(dims(model.graph.input[0])).toEqual(['pieces', 3, 84, 84]);
    expect(model.graph.output.map((o) => o.name)).toEqual(['image_features']);
    expect(dims(model.graph.output[0])).toEqual(['pieces', 36, 32]);
    expect(model.graph.node.filter((n) => n.op_type === 'MultiHeadAttention')).toHaveLength(1);
  });

  it('a tensor with the wrong shape is a CheckpointMismatchError naming it', () => {
    const l = loaded.get(CASES[0].label)!;
    const name = `${l.prefix}encoder.layers.1.mlp.fc1.weight`;
    const bad: WeightSource = {
      has: (n) => l.src.has(n),
      read: (n): Tensor => (n === name ? { dtype: 'float32', dims: [7, 32], data: new Float32Array(7 * 32) } : l.src.read(n)),
    };
    expect(() => buildEncoderGraph(bad, l.config)).toThrow(CheckpointMismatchError);
    expect(() => buildEncoderGraph(bad, l.config)).toThrow(/mlp\.fc1\.weight.*\[7, 32\].*\[64, 32\]/);
  });

  it('a checkpoint whose tensors disagree with its config.json is refused', async () => {
    const dir = path.join(root, 'mismatch');
    const { config } = await writeTinyCheckpoint(dir, { visionHiddenSize: 32, imageSize: 56 });
    const src = Checkpoint.open(dir);
    try {
      const lying = readVisionConfig({ ...config, vision_config: { ...(config.vision_config as object), image_size: 70 } });
      expect(() => buildEncoderGraph(src, lying)).toThrow(/position_embedding\.weight.*\[17, 32\].*\[26, 32\]/);
    } finally {
      src.close();
    }
  });

  it('a checkpoint without a CLIP tower is a CheckpointMismatchError', () => {
    const dir = path.join(root, 'empty');
    writeCheckpoint(dir, [{ name: 'model.norm.weight', dtype: 'float32', shape: [4], data: () => new Float32Array(4) }]);
    const src = Checkpoint.open(dir);
    try {
      expect(() => buildEncoderGraph(src, loaded.get(CASES[0].label)!.config)).toThrow(/no CLIP vision tower/);
    } finally {
      src.close();
    }
  });
});

describe('VisionEncoder', () => {
  const { backend, device } = backends[0];

  it('reads the I/O dtype from its session (bytes or a file), splits large batches with maxBatch, and checks its input', async () => {
    const l = loaded.get(CASES[1].label)!;
    const S = l.config.imageSize;
    const fp16 = buildEncoderGraph(l.src, l.config, { format: { dtype: 'float16' } }).toBytes();
    const file = path.join(root, 'encoder-fp16.onnx');
    fs.writeFileSync(file, fp16);
    for (const model of [fp16, file]) {
      const half = await VisionEncoder.create(backend, model, { config: l.config, device });
      expect(half.dtype).toBe('float16');
      await half.dispose();
    }

    const bytes = buildEncoderGraph(l.src, l.config).toBytes();
    const whole = await VisionEncoder.create(backend, bytes, { config: l.config, device });
    const chunked = await VisionEncoder.create(backend, bytes, { config: l.config, device, maxBatch: 2 });
    try {
      expect(whole.dtype).toBe('float32');
      const pixels = seededFloats(5 * 3 * S * S, 21, 2);
      expect(maxAbsDiff(await chunked.encode(pixels, 5), await whole.encode(pixels, 5))).toBeLessThanOrEqual(1e-5);
      await expect(whole.encode(pixels, 4)).rejects.toThrow(InvalidOptionError);
      await expect(whole.encode(pixels, 0)).rejects.toThrow(InvalidOptionError);
    } finally {
      await whole.dispose();
      await chunked.dispose();
    }
  });

  it('refuses a model that is not a vision encoder', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [1]);
    g.output(g.add(x, x), 'y', 'float32', [1]);
    await expect(VisionEncoder.create(backend, g.toBytes(), { config: loaded.get(CASES[0].label)!.config, device })).rejects.toThrow(SessionError);
  });
});
