import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointMismatchError, Graph, InvalidOptionError, SessionError, tensor, UnsupportedConfigError, type WeightFormat, type WeightSource } from '@llava-mini/core';
import { Checkpoint, writeCheckpoint } from '@llava-mini/core/node';
import { maxAbsDiff, seededFloats, testBackends } from '@llava-mini/core/testing';
import { cachedFloat32, refBicubicResize, refCompressor } from '@llava-mini/reference';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, describe, expect, it } from 'vitest';
import { bicubicTaps, buildCompressorGraph, Compressor, keyPositionTable, readCompressorConfig } from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-mini-compressor-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let counter = 0;
/** A tiny checkpoint without CLIP; std 0.2 makes attention clearly non-uniform so position errors show. */
async function tiny(options: TinyOptions) {
  const dir = path.join(root, `ckpt-${counter++}`);
  const { config } = await writeTinyCheckpoint(dir, { includeVision: false, std: 0.2, ...options });
  return { dir, json: config, src: cachedFloat32(Checkpoint.open(dir)) };
}

/** Runs `graph` on every test backend through the runtime class and compares with `expected`. */
async function expectOnBackends(bytes: Uint8Array, src: WeightSource, json: Record<string, unknown>, features: Float32Array, batch: number, keyGrid: number, expected: Float32Array) {
  const config = readCompressorConfig(json, src);
  for (const { label, backend, device } of await testBackends()) {
    const compressor = await Compressor.create(backend, bytes, { device, config });
    expect([compressor.keyGrid, compressor.dtype], label).toEqual([keyGrid, 'float32']);
    const got = await compressor.run(features, batch);
    await compressor.dispose();
    expect(got.length, label).toBe(expected.length);
    expect(maxAbsDiff(got, expected), label).toBeLessThanOrEqual(1e-4);
  }
}

describe('key positional table (bicubic, align_corners=False)', () => {
  it('C = 1: the same vector at every key position', () => {
    const D = 8;
    const pos = seededFloats(D, 1);
    const table = keyPositionTable(pos, 1, D, 24);
    for (let m = 0; m < 24 * 24; m++) expect(maxAbsDiff(table.subarray(m * D, (m + 1) * D), pos)).toBeLessThan(1e-6);
  });

  it('C = 2 -> s = 4: entry (0, 0) uses PyTorch cubic weights (-0.03515625, 0.26171875, 0.87890625, -0.10546875)', () => {
    // dst 0: src = (0 + 0.5) * 2/4 - 0.5 = -0.25 -> base -1, t = 0.75; taps -2..1 clamp to 0, 0, 0, 1.
    // W(1.75) = -0.03515625, W(0.75) = 0.26171875, W(0.25) = 0.87890625, W(1.25) = -0.10546875 (A = -0.75).
    expect(bicubicTaps(2, 4)[0]).toEqual({ index: [0, 0, 0, 1], weight: [-0.03515625, 0.26171875, 0.87890625, -0.10546875] });
    const D = 3;
    const pos = seededFloats(4 * D, 2);
    const table = keyPositionTable(pos, 2, D, 4);
    const w = [-0.03515625 + 0.26171875 + 0.87890625, -0.10546875]; // weight of source row/column 0 and 1
    for (let d = 0; d < D; d++) {
      let expected = 0;
      for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) expected += w[i] * w[j] * pos[(i * 2 + j) * D + d];
      expect(table[d]).toBeCloseTo(expected, 6);
    }
  });

  it('matches the reference resize for up- and down-sampling, and is the table itself when s = C', () => {
    for (const [C, s] of [[2, 4], [3, 7], [8, 48], [4, 2], [5, 5]]) {
      const D = 4;
      const pos = seededFloats(C * C * D, 10 + C + s);
      expect(maxAbsDiff(keyPositionTable(pos, C, D, s), refBicubicResize(pos, C, D, s)), `${C}->${s}`).toBeLessThan(1e-6);
    }
    const pos = seededFloats(9 * 2, 3);
    expect(keyPositionTable(pos, 3, 2, 3)).toEqual(pos);
  });
});

describe('compressor graph vs reference (node-cpu, web-wasm)', () => {
  const cases: { name: string; options: TinyOptions; batch: number }[] = [
    { name: 'C = 1, 336px (24x24 keys), 4 heads', options: { compressorSize: 1 }, batch: 1 },
    { name: 'C = 2, 56px (4x4 keys, bicubic-resized table), 2 frames', options: { compressorSize: 2, imageSize: 56 }, batch: 2 },
    { name: 'C = 2, 28px (2x2 keys = the query grid), 8 heads', options: { compressorSize: 2, imageSize: 28, compressorHeads: 8 }, batch: 1 },
    { name: 'C = 2, HD N = 2 on 56px (8x8 stitched keys)', options: { compressorSize: 2, imageSize: 56, resolutionRatio: 2 }, batch: 1 },
  ];
  for (const { name, options, batch } of cases) {
    it(name, async () => {
      const { json, src } = await tiny(options);
      const config = readCompressorConfig(json, src);
      const vc = json.vision_config as { image_size: number; patch_size: number };
      const s = (vc.image_size / vc.patch_size) * ((json.resolution_ratio as number) ?? 1);
      const D = config.hidden;
      const features = seededFloats(batch * s * s * D, 100 + s, 2);
      const expected = new Float32Array(batch * config.queries * D);
      for (let b = 0; b < batch; b++) expected.set(refCompressor(src, json, features.subarray(b * s * s * D, (b + 1) * s * s * D)), b * config.queries * D);
      const bytes = buildCompressorGraph(src, config, { keyGrid: s }).toBytes();
      await expectOnBackends(bytes, src, json, features, batch, s, expected);
    });
  }

  it('the key positions matter: dropping them changes the reference by far more than the tolerance', async () => {
    const { json, src } = await tiny({ compressorSize: 2, imageSize: 56 });
    const features = seededFloats(16 * 32, 7, 2);
    const noPos: WeightSource = {
      has: (n) => src.has(n),
      read: (n) => (n.endsWith('pos_embed') ? tensor('float32', [4, 32], new Float32Array(4 * 32)) : src.read(n)),
    };
    expect(maxAbsDiff(refCompressor(src, json, features), refCompressor(noPos, json, features))).toBeGreaterThan(1e-2);
  });

  // Bounds: the worst of node CPU and web WASM on this seeded model (fp16 0.06 %, q8 1.1 %, q4 16.5 %)
  // with about 2x headroom. fp16 =
  // activations and weights; q8/q4 = MatMulNBits blocks of 32 with int8 activations (accuracy level 4,
  // what the converter writes for the CPU target).
  const FORMATS: { name: string; format: WeightFormat; bound: number }[] = [
    { name: 'fp16', format: { dtype: 'float16' }, bound: 5e-3 },
    { name: 'q8', format: { dtype: 'float32', quant: { bits: 8, blockSize: 32, accuracyLevel: 4 } }, bound: 3e-2 },
    { name: 'q4', format: { dtype: 'float32', quant: { bits: 4, blockSize: 32, accuracyLevel: 4 } }, bound: 0.3 },
  ];
  for (const { name, format, bound } of FORMATS) {
    it(`${name} graph: within ${bound} (max |error| / max |value|) of the float32 reference on both backends`, async () => {
      const { json, src } = await tiny({ compressorSize: 2, imageSize: 56 });
      const config = readCompressorConfig(json, src);
      const features = seededFloats(16 * 32, 8, 2);
      const expected = refCompressor(src, json, features);
      const scale = Math.max(...expected.map(Math.abs));
      const bytes = buildCompressorGraph(src, config, { keyGrid: 4, format }).toBytes();
      for (const { label, backend, device } of await testBackends()) {
        const c = await Compressor.create(backend, bytes, { device, config });
        expect(c.dtype, label).toBe(format.dtype);
        const got = await c.run(features);
        await c.dispose();
        const err = maxAbsDiff(got, expected) / scale;
        expect(err, label).toBeLessThan(bound);
        expect(err, `${label}: the weights really are ${name}`).toBeGreaterThan(bound / 100);
      }
    });
  }
});

describe('config and checkpoint errors', () => {
  it('reads C, D and heads from the checkpoint and config.json', async () => {
    const { json, src } = await tiny({ compressorSize: 2, compressorHeads: 8 });
    expect(readCompressorConfig(json, src)).toEqual({ size: 2, queries: 4, hidden: 32, heads: 8, layerNormEps: 1e-5 });
    const { compressor_num_heads: _, ...release } = json;
    expect(readCompressorConfig(release, src).heads).toBe(8);
  });

  it('config disagreeing with the query tensor -> CheckpointMismatchError; bad heads -> UnsupportedConfigError', async () => {
    const { json, src } = await tiny({ compressorSize: 2 });
    expect(() => readCompressorConfig({ ...json, compressor_size: 1 }, src)).toThrow(CheckpointMismatchError);
    expect(() => readCompressorConfig({ ...json, mm_hidden_size: 64 }, src)).toThrow(CheckpointMismatchError);
    const err = (() => {
      try {
        readCompressorConfig({ ...json, compressor_num_heads: 3 }, src);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UnsupportedConfigError);
    expect((err as UnsupportedConfigError).key).toBe('compressor_num_heads');
  });

  it('a checkpoint with wrong shapes -> CheckpointMismatchError naming the tensor', async () => {
    const { dir, json } = await tiny({ compressorSize: 2 });
    const good = Checkpoint.open(dir);
    const bad = path.join(root, 'bad');
    const wrong: Record<string, number[]> = { 'model.compressor.query': [3, 32], 'model.compressor.attn.in_proj_weight': [3 * 32, 16] };
    const write = (replace: string) =>
      writeCheckpoint(
        bad,
        good.names.map((name) => {
          const t = good.read(name);
          const shape = name === replace ? wrong[name] : t.dims;
          return { name, dtype: t.dtype, shape, data: name === replace ? new Float32Array(shape[0] * shape[1]) : t.data };
        }),
      );
    write('model.compressor.query');
    expect(() => readCompressorConfig(json, Checkpoint.open(bad))).toThrow(/not a square number/);
    expect(() => readCompressorConfig(json, Checkpoint.open(bad))).toThrow(CheckpointMismatchError);
    write('model.compressor.attn.in_proj_weight');
    const src = Checkpoint.open(bad);
    expect(() => buildCompressorGraph(src, readCompressorConfig(json, src), { keyGrid: 2 })).toThrow(/in_proj_weight/);
    expect(() => buildCompressorGraph(src, readCompressorConfig(json, src), { keyGrid: 2 })).toThrow(CheckpointMismatchError);
  });

  it('runtime input of the wrong size (the graph fixes s*s tokens) -> InvalidOptionError before the runtime sees it', async () => {
    const { json, src } = await tiny({ compressorSize: 1, imageSize: 28 });
    const config = readCompressorConfig(json, src);
    const [{ backend, device }] = await testBackends();
    const c = await Compressor.create(backend, buildCompressorGraph(src, config, { keyGrid: 2 }).toBytes(), { device, config });
    await expect(c.run(new Float32Array(3 * 32))).rejects.toThrow(InvalidOptionError);
    await expect(c.run(new Float32Array(9 * 32))).rejects.toThrow(/built for 2x2 = 4 tokens per image, got 9/);
    await expect(c.run(new Float32Array(4 * 32 + 1))).rejects.toThrow(InvalidOptionError);
    await expect(c.run(new Float32Array(8 * 32), 0)).rejects.toThrow(InvalidOptionError);
    expect((await c.run(seededFloats(4 * 32, 1))).length).toBe(32);
    await c.dispose();
  });

  it('refuses a model that is not a compressor', async () => {
    const { json, src } = await tiny({ compressorSize: 1, imageSize: 28 });
    const g = new Graph();
    const x = g.input('x', 'float32', [1]);
    g.output(g.add(x, x), 'y', 'float32', [1]);
    const [{ backend, device }] = await testBackends();
    await expect(Compressor.create(backend, g.toBytes(), { device, config: readCompressorConfig(json, src) })).rejects.toThrow(SessionError);
  });
});
