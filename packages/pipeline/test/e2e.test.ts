import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { toFloat32 } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { loadImage, type PixelBatch, processFrame, processImage, readVisionConfig } from '@llava-mini/encoder/node';
import { cachedFloat32, maxAbsDiff, type RefPicture, refGenerate } from '@llava-mini/reference';
import { writeTinyCheckpoint, type TinyOptions } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, decodeFrames, LlavaMini, probeVideo, zeroTimings } from '../src/node.js';
import { frameIndices } from '../src/video/sampling.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-e2e-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const VIDEO = path.resolve(__dirname, '../../../examples/assets/clip.mp4');
const QUESTION = 'What is in this picture?';
const MAX_NEW = 6;

interface Fixture {
  ckpt: string;
  model: string;
  config: Record<string, any>;
  stopIds: number[];
}

async function fixture(name: string, options: TinyOptions): Promise<Fixture> {
  const ckpt = path.join(root, `${name}-hf`);
  const model = path.join(root, `${name}-onnx`);
  // std 0.3: at the default 0.02 (or 0.1) the tiny model repeats one token whatever it sees; at 0.3 its output follows the input, so a wrong step changes the tokens.
  const info = await writeTinyCheckpoint(ckpt, { seed: 7, std: 0.3, ...options });
  await convertCheckpoint(ckpt, model);
  const gen = JSON.parse(fs.readFileSync(path.join(ckpt, 'generation_config.json'), 'utf8'));
  return { ckpt, model, config: info.config as Record<string, any>, stopIds: gen.eos_token_id };
}

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
    const t = zeroTimings();
    const img = await loadImage(IMAGE);
    const ids = r.promptTokenIds;
    const embeds = model.vision.assemble(ids, await model.vision.fuse(ids, await model.vision.features([img], false, t), t));
    await model.dispose();
    const ref = reference(standard, [processImage(img, readVisionConfig(standard.config))], ids);
    // fp32 through CLIP, the compressor and the pre-fusion layers at std 0.3 gives rows of magnitude ~100:
    // compare relative to the largest value.
    const scale = Math.max(...ref.embeds.map(Math.abs));
    expect(maxAbsDiff(toFloat32(embeds), ref.embeds) / scale).toBeLessThanOrEqual(1e-5);
  });

  it('video frames are streamed through the stages and not kept: a follow-up reads the video again', async () => {
    const model = await LlavaMini.fromPretrained(standard.model, { device: 'cpu' });
    const chat = model.chat({ video: VIDEO });
    const progress: number[] = [];
    await chat.ask('What happens?', { maxNewTokens: 2, onProgress: (e) => e.task === 'video' && progress.push(e.done) }).done();
    expect(progress).toEqual([4]); // 4 frames, one batch
    expect(model.vision.encoderRuns).toBe(4);
    await chat.ask('And then?', { maxNewTokens: 2 }).done();
    expect(model.vision.encoderRuns).toBe(8);
    await model.dispose();
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
    // A new question about the same picture hits the feature cache too.
    await model.ask(IMAGE, 'Describe it.', { maxNewTokens: 2 }).done();
    expect(model.vision.encoderRuns).toBe(1);
    await model.dispose();
  });
});
