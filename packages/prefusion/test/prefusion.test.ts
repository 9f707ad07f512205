import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointMismatchError, InvalidOptionError, UnsupportedConfigError } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { maxAbsDiff, refDecoderLayer, refLlamaConfig, refPrefusion, refProjector, testBackends } from '@llava-mini/reference';
import type { TinyOptions } from '@llava-mini/tiny';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPrefusionGraph, Prefusion, prefusionInputs } from '../src/index.js';
import { concat, embed, imageSide, PROMPT, root, tiny } from './helpers.js';

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const LLAMA3_SHORT = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } as const;

describe('prefusionInputs (spec §3.2)', () => {
  it('hand example: 2 image rows, 1 compressed row, ids [5, -200, 0, 7]', () => {
    const { positionIds, attentionBias, valid } = prefusionInputs([5, -200, 0, 7], 2, 1);
    expect(valid).toEqual([true, true, true, true, false, false, true]);
    // cumsum(valid) - 1 = 0 1 2 3 3 3 4; padded rows get 1.
    expect([...positionIds].map(Number)).toEqual([0, 1, 2, 3, 1, 1, 4]);
    const allowed = [
      [1, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 0, 0, 1],
    ];
    const lowest = -3.4028234663852886e38;
    expect([...attentionBias]).toEqual(allowed.flat().map((a) => (a ? 0 : Math.fround(lowest))));
    expect(prefusionInputs([5, -200], 1, 1, 'float16').attentionBias[1]).toBe(-65504);
  });
  it('rejects empty prompts and bad counts', () => {
    expect(() => prefusionInputs([], 2, 1)).toThrow(InvalidOptionError);
    expect(() => prefusionInputs([1], 0, 1)).toThrow(InvalidOptionError);
    expect(() => prefusionInputs([1.5], 2, 1)).toThrow(InvalidOptionError);
  });
});

describe('pre-fusion graph vs reference (node-cpu, web-wasm)', () => {
  const cases: { name: string; options: TinyOptions }[] = [
    { name: 'C = 1, N = 1, 56px, GQA 4/2, llama3 scaling', options: { imageSize: 56, ropeTheta: 10000, ropeScaling: LLAMA3_SHORT } },
    { name: 'C = 1, N = 1, 336px (576 image rows), GQA 4/2, Llama-3.1 scaling', options: {} },
    { name: 'C = 2, N = 2 (HD: 8x8 stitched + 4x4 global rows), MHA, no RoPE scaling', options: { imageSize: 56, compressorSize: 2, resolutionRatio: 2, numKeyValueHeads: 4, ropeScaling: null } },
    { name: 'C = 2, N = 1, GQA 8/2, linear RoPE scaling, 3 layers', options: { imageSize: 56, compressorSize: 2, numAttentionHeads: 8, numKeyValueHeads: 2, ropeScaling: { rope_type: 'linear', factor: 4 }, prefusionLayers: 3 } },
  ];
  for (const { name, options } of cases) {
    it(name, async () => {
      const { json, src } = await tiny(options);
      const H = json.hidden_size as number;
      const image = imageSide(src, json, 1);
      const textEmbeds = embed(src, PROMPT, H);
      const expected = refPrefusion(src, json, { ...image, textEmbeds, ids: PROMPT });
      const CC = (json.compressor_size as number) ** 2;
      const bytes = buildPrefusionGraph(src, json, { compressedTokens: CC, maxPositions: 1024 }).toBytes();
      for (const { label, backend, device } of await testBackends()) {
        const prefusion = await Prefusion.create(backend, bytes, { device, json, maxPositions: 1024 });
        const got = await prefusion.run({ ...image, textEmbeds, ids: PROMPT });
        await prefusion.dispose();
        expect(got.visionTokens.length, label).toBe(CC * H);
        expect(maxAbsDiff(got.visionTokens, expected.visionTokens), `${label} vision`).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(got.fusedText, expected.fusedText), `${label} text`).toBeLessThanOrEqual(1e-4);
        // The placeholder and token 0 keep their raw embeddings.
        for (const t of [5, 7]) expect(got.fusedText.subarray(t * H, (t + 1) * H)).toEqual(textEmbeds.subarray(t * H, (t + 1) * H));
      }
    });
  }

  it('the test can fail: plain causal attention (no key padding) changes the reference far beyond 1e-4', async () => {
    const { json, src } = await tiny({ imageSize: 56, ropeScaling: LLAMA3_SHORT });
    const H = json.hidden_size as number;
    const D = json.mm_hidden_size as number;
    const image = imageSide(src, json, 2);
    const textEmbeds = embed(src, PROMPT, H);
    const expected = refPrefusion(src, json, { ...image, textEmbeds, ids: PROMPT });
    // The same computation without the padding part of the mask and with plain 0..T-1 positions.
    const c = refLlamaConfig(json);
    let x: Float32Array = concat(refProjector(src, image.imageFeatures, D, H), refProjector(src, image.compressed, D, H), textEmbeds);
    const T = x.length / H;
    const pos = Array.from({ length: T }, (_, i) => i);
    for (let l = 0; l < (json.prefusion_layer_num as number); l++) x = refDecoderLayer(src, `model.prefusion_layers.${l}`, c, x, pos, { k: [], v: [] }, (i, j) => j <= i);
    const L = PROMPT.length;
    expect(maxAbsDiff(x.subarray((T - L) * H, (T - L + 1) * H), expected.fusedText.subarray(0, H))).toBeLessThan(1e-5); // rows before the placeholder agree...
    expect(maxAbsDiff(x.subarray((T - 1) * H), expected.fusedText.subarray((L - 1) * H))).toBeGreaterThan(1e-2); // ...the last row does not
  });

  it('video: fuseFrames concatenates vision tokens and averages fused text like per-frame references', async () => {
    const { json, src } = await tiny({ imageSize: 56, compressorSize: 2 });
    const H = json.hidden_size as number;
    const textEmbeds = embed(src, PROMPT, H);
    const frames = [3, 4, 5].map((seed) => imageSide(src, json, seed));
    const refs = frames.map((f) => refPrefusion(src, json, { ...f, textEmbeds, ids: PROMPT }));
    const mean = new Float32Array(PROMPT.length * H);
    for (const r of refs) r.fusedText.forEach((v, i) => (mean[i] += v / refs.length));
    const vision = concat(...refs.map((r) => r.visionTokens));
    const bytes = buildPrefusionGraph(src, json, { compressedTokens: 4, maxPositions: 256 }).toBytes();
    async function* stream() {
      for (const f of frames) yield f;
    }
    for (const { label, backend, device } of await testBackends()) {
      const prefusion = await Prefusion.create(backend, bytes, { device, json, maxPositions: 256 });
      for (const source of [frames, stream()]) {
        const got = await prefusion.fuseFrames(source, { textEmbeds, ids: PROMPT });
        expect(got.frames).toBe(3);
        expect(maxAbsDiff(got.visionTokens, vision), `${label} vision`).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(got.fusedText, mean), `${label} text`).toBeLessThanOrEqual(1e-4);
      }
      await expect(prefusion.fuseFrames([], { textEmbeds, ids: PROMPT })).rejects.toThrow(InvalidOptionError);
      await prefusion.dispose();
    }
  });

  it('float16 graph: close to the float32 reference on both backends', async () => {
    const { json, src } = await tiny({ imageSize: 56, ropeScaling: LLAMA3_SHORT });
    const H = json.hidden_size as number;
    const image = imageSide(src, json, 6);
    const textEmbeds = embed(src, PROMPT, H);
    const expected = refPrefusion(src, json, { ...image, textEmbeds, ids: PROMPT });
    const bytes = buildPrefusionGraph(src, json, { compressedTokens: 1, maxPositions: 64, format: { dtype: 'float16' } }).toBytes();
    for (const { label, backend, device } of await testBackends()) {
      const prefusion = await Prefusion.create(backend, bytes, { device, json, dtype: 'float16', maxPositions: 64 });
      const got = await prefusion.run({ ...image, textEmbeds, ids: PROMPT });
      await prefusion.dispose();
      const scale = Math.max(...expected.fusedText.map(Math.abs), ...expected.visionTokens.map(Math.abs));
      expect(maxAbsDiff(got.visionTokens, expected.visionTokens) / scale, label).toBeLessThan(1e-2);
      expect(maxAbsDiff(got.fusedText, expected.fusedText) / scale, label).toBeLessThan(1e-2);
    }
  });
});

describe('config, checkpoint and input errors', () => {
  it('an unsupported projector -> UnsupportedConfigError naming mm_projector_type', async () => {
    const { json, src } = await tiny({ imageSize: 56 });
    for (const bad of [{ ...json, mm_projector_type: 'linear' }, { ...json, mm_projector_type: 'mlp3x_gelu' }, { ...json, mm_projector_type: undefined }]) {
      const err = (() => {
        try {
          buildPrefusionGraph(src, bad, { compressedTokens: 1 });
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(UnsupportedConfigError);
      expect((err as UnsupportedConfigError).key).toBe('mm_projector_type');
    }
  });

  it('a checkpoint whose tensors disagree with its config.json -> CheckpointMismatchError', async () => {
    const { dir, json } = await tiny({ imageSize: 56 });
    // Edit the folder's config.json the way a wrong config would arrive: the shapes no longer fit.
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...json, mm_hidden_size: 48 }));
    const src = Checkpoint.open(dir);
    const wrongWidth = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(() => buildPrefusionGraph(src, wrongWidth, { compressedTokens: 1 })).toThrow(CheckpointMismatchError);
    expect(() => buildPrefusionGraph(src, wrongWidth, { compressedTokens: 1 })).toThrow(/model\.mm_projector\.0\.weight/);
    const wrongFfn = { ...json, intermediate_size: 96 };
    expect(() => buildPrefusionGraph(src, wrongFfn, { compressedTokens: 1 })).toThrow(/prefusion_layers\.0\.mlp\.gate_proj/);
    expect(() => buildPrefusionGraph(src, { ...json, prefusion_layer_num: 3 }, { compressedTokens: 1 })).toThrow(/prefusion_layers\.2/);
  });

  it('compressedTokens disagreeing with compressor_size, and bad run inputs -> InvalidOptionError', async () => {
    const { json, src } = await tiny({ imageSize: 56 });
    expect(() => buildPrefusionGraph(src, json, { compressedTokens: 4 })).toThrow(InvalidOptionError);
    const H = json.hidden_size as number;
    const D = json.mm_hidden_size as number;
    const [{ backend, device }] = await testBackends();
    const prefusion = await Prefusion.create(backend, buildPrefusionGraph(src, json, { compressedTokens: 1, maxPositions: 32 }).toBytes(), { device, json, maxPositions: 32 });
    const image = imageSide(src, json, 9);
    const textEmbeds = embed(src, PROMPT, H);
    await expect(prefusion.run({ ...image, textEmbeds, ids: PROMPT.slice(1) })).rejects.toThrow(/textEmbeds has 12 rows/);
    await expect(prefusion.run({ ...image, compressed: new Float32Array(D + 1), textEmbeds, ids: PROMPT })).rejects.toThrow(InvalidOptionError);
    const long = Array.from({ length: 20 }, (_, i) => i + 1);
    await expect(prefusion.run({ ...image, textEmbeds: embed(src, long, H), ids: long })).rejects.toThrow(/RoPE positions/);
    await prefusion.dispose();
  });
});
