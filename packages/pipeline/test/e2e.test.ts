import { toFloat32 } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { loadImage, type PixelBatch, processFrame, processImage, readVisionConfig } from '@llava-mini/encoder/node';
import { maxAbsDiff } from '@llava-mini/core/testing';
import { cachedFloat32, type RefPicture, refGenerate } from '@llava-mini/reference';
import { beforeAll, describe, expect, it } from 'vitest';
import { embeddingIds, llmInput } from '@llava-mini/prefusion';
import { decodeFrames, LlavaMini, probeVideo } from '../src/node.js';
import { type Fixture, fixture, IMAGE, VIDEO } from './fixtures.js';
import { frameIndices } from '@llava-mini/encoder';

const QUESTION = 'What is in this picture?';
const MAX_NEW = 6;

function reference(f: Fixture, batches: PixelBatch[], ids: number[]): { embeds: Float32Array; ids: number[] } {
  const pictures: RefPicture[] = batches.map((b) => ({ pixels: b.data, pieces: b.pieces }));
  const cp = Checkpoint.open(f.ckpt);
  try {
    return refGenerate(cachedFloat32(cp), f.config, pictures, ids, { maxNewTokens: MAX_NEW, stopIds: f.stopIds });
  } finally {
    cp.close();
  }
}

describe('end to end: tiny checkpoint -> convert -> ask, against the plain-TypeScript reference pipeline', () => {
  let standard: Fixture;
  let hd: Fixture;
  beforeAll(async () => {
    standard = await fixture('standard', {});
    hd = await fixture('hd', { resolutionRatio: 2, compressorSize: 2, imageSize: 112 });
  });

  /** The reference result of each case, computed once and compared with both backends. */
  const references = new Map<string, Promise<{ embeds: Float32Array; ids: number[] }>>();
  const once = (key: string, make: () => Promise<{ embeds: Float32Array; ids: number[] }>) => {
    if (!references.has(key)) references.set(key, make());
    return references.get(key) as Promise<{ embeds: Float32Array; ids: number[] }>;
  };

  const cases = [
    {
      name: 'image',
      fixture: () => standard,
      input: () => IMAGE,
      visionTokens: 1,
      pictures: async (f: Fixture) => [processImage(await loadImage(IMAGE), readVisionConfig(f.config))],
    },
    {
      name: 'HD image (resolution_ratio 2, 4 vision tokens from 4 crops + the full image)',
      fixture: () => hd,
      input: () => IMAGE,
      visionTokens: 4,
      pictures: async (f: Fixture) => [processImage(await loadImage(IMAGE), readVisionConfig(f.config))],
    },
    {
      name: 'video (1 frame per second: vision tokens concatenated, fused text averaged)',
      fixture: () => standard,
      input: () => ({ video: VIDEO }),
      visionTokens: 4,
      pictures: async (f: Fixture) => {
        const info = await probeVideo(VIDEO);
        const frames: PixelBatch[] = [];
        for await (const frame of decodeFrames(VIDEO, info, frameIndices(info.frames, info.fps))) frames.push(processFrame(frame, readVisionConfig(f.config)));
        return frames;
      },
    },
  ];

  for (const c of cases) {
    for (const device of ['cpu', 'wasm'] as const) {
      it(`${c.name}, ${device}: the same tokens as the reference`, async () => {
        const f = c.fixture();
        const model = await LlavaMini.fromPretrained(f.model, { device });
        const r = await model.ask(c.input(), QUESTION, { maxNewTokens: MAX_NEW }).done();
        await model.dispose();
        expect(r.promptTokenIds.filter((id) => id === -200)).toHaveLength(1);
        expect(r.llmInputTokens).toBe(r.promptTokenIds.length - 1 + c.visionTokens);
        const ref = await once(c.name, async () => reference(f, await c.pictures(f), r.promptTokenIds));
        expect(r.ids).toEqual(ref.ids);
        // Not two empty answers agreeing, and the same reason to stop as the reference's length says.
        expect(r.ids.length).toBeGreaterThan(0);
        expect(r.finishReason).toBe(ref.ids.length < MAX_NEW ? 'stop' : 'length');
      });
    }
  }

  it('the LLM input itself (fused text around the vision token) matches the reference, not just the argmax', async () => {
    const model = await LlavaMini.fromPretrained(standard.model, { device: 'cpu' });
    const r = await model.ask(IMAGE, QUESTION, { maxNewTokens: 1 }).done();
    const img = await loadImage(IMAGE);
    const ids = r.promptTokenIds;
    // The turn's stages one by one: pictures, text embeddings (placeholder -> token 0), pre-fusion, the LLM input.
    const { llm, vision } = model.parts;
    const { features } = await vision.encode([img], false);
    const textEmbeds = toFloat32(await llm.embed(embeddingIds(ids)));
    const embeds = llmInput(ids, await vision.fuse(textEmbeds, ids, features), llm.dtype);
    await model.dispose();
    const ref = reference(standard, [processImage(img, readVisionConfig(standard.config))], ids);
    // fp32 through CLIP, the compressor and the pre-fusion layers at std 0.3 gives rows of magnitude ~100:
    // compare relative to the largest value.
    const scale = Math.max(...ref.embeds.map(Math.abs));
    expect(maxAbsDiff(toFloat32(embeds), ref.embeds) / scale).toBeLessThanOrEqual(1e-5);
  });

  it('video frames are streamed through the stages; a follow-up carries on from their kept state, a new conversation takes them from the picture cache, and without either the video is read and encoded again', async () => {
    const model = await LlavaMini.fromPretrained(standard.model, { device: 'cpu' });
    const chat = model.chat({ video: VIDEO });
    const progress: number[] = [];
    const { timings: t } = await chat.ask('What happens?', { maxNewTokens: 2, onProgress: (e) => e.task === 'video' && progress.push(e.done) }).done();
    expect(progress).toEqual([4]); // 4 frames, one batch
    // Each stage timed itself while frames were decoded, encoded and fused in turn: none counts another's time.
    for (const ms of [t.inputMs, t.encoderMs, t.compressorMs, t.embedMs, t.prefusionMs]) expect(ms).toBeGreaterThan(0);
    expect(t.inputMs + t.encoderMs + t.compressorMs + t.embedMs + t.prefusionMs).toBeLessThan(t.timeToFirstTokenMs);
    expect(model.vision.encoderRuns).toBe(4);
    const then = await chat.ask('And then?', { maxNewTokens: 2 }).done();
    expect(model.vision.encoderRuns).toBe(4);
    expect(then.timings.inputMs + then.timings.encoderMs).toBe(0);
    // A conversation keeping no frame state: its follow-up decodes the video again, but every frame's
    // prefix comes from the picture cache.
    const stateless = model.chat({ video: VIDEO }, { videoStateBytes: 0 });
    const again = [(await stateless.ask('What happens?', { maxNewTokens: 2 }).done()).ids, (await stateless.ask('And then?', { maxNewTokens: 2 }).done()).ids];
    expect(model.vision.encoderRuns).toBe(4);
    expect(model.vision.pictures.stats).toMatchObject({ entries: 4, misses: 4, hits: 8 });
    await model.dispose();
    // With neither, each turn encodes every frame, and the tokens are the same.
    const off = await LlavaMini.fromPretrained(standard.model, { device: 'cpu', pictureCacheBytes: 0 });
    const cold = off.chat({ video: VIDEO }, { videoStateBytes: 0 });
    const coldIds = [(await cold.ask('What happens?', { maxNewTokens: 2 }).done()).ids, (await cold.ask('And then?', { maxNewTokens: 2 }).done()).ids];
    expect(off.vision.encoderRuns).toBe(8);
    expect(coldIds).toEqual(again);
    await off.dispose();
  });

  it('a second chat turn on the same image reuses the cache and does not re-run the encoder', async () => {
    const model = await LlavaMini.fromPretrained(standard.model, { device: 'cpu' });
    const chat = model.chat(IMAGE);
    const first = await chat.ask(QUESTION, { maxNewTokens: 3 }).done();
    expect(model.vision.encoderRuns).toBe(1);
    const second = await chat.ask('And what colour is it?', { maxNewTokens: 3 }).done();
    expect(model.vision.encoderRuns).toBe(1);
    // The follow-up ran only its own text (the cache held the first turn).
    expect(second.llmInputTokens).toBeLessThan(first.llmInputTokens);
    await model.dispose();
  });

  for (const device of ['cpu', 'wasm'] as const) {
    it(`${device}: a new question about a picture already seen runs from its cached prefix, with the cold run's and the reference's tokens`, async () => {
      const second = 'Describe it.';
      const model = await LlavaMini.fromPretrained(standard.model, { device });
      await model.ask(IMAGE, QUESTION, { maxNewTokens: 2 }).done();
      expect(model.vision.pictures.stats).toMatchObject({ entries: 1, hits: 0, misses: 1 });
      const warm = await model.ask(IMAGE, second, { maxNewTokens: MAX_NEW }).done();
      // The picture's prefix came from the cache: no CLIP, no compressor, only text rows in pre-fusion.
      expect(model.vision.pictures.stats).toMatchObject({ entries: 1, hits: 1 });
      expect(model.vision.encoderRuns).toBe(1);
      expect(warm.timings.encoderMs).toBe(0);
      await model.dispose();
      const off = await LlavaMini.fromPretrained(standard.model, { device, pictureCacheBytes: 0 });
      const cold = await off.ask(IMAGE, second, { maxNewTokens: MAX_NEW }).done();
      expect(off.vision.encoderRuns).toBe(1);
      expect(off.vision.pictures.stats.entries).toBe(0);
      await off.dispose();
      expect(warm.promptTokenIds).toEqual(cold.promptTokenIds);
      expect(warm.ids).toEqual(cold.ids);
      const ref = await once(`second:${second}`, async () => reference(standard, [processImage(await loadImage(IMAGE), readVisionConfig(standard.config))], warm.promptTokenIds));
      expect(warm.ids).toEqual(ref.ids);
    });
  }
});
