// Many conversations on one loaded model: each owns its KV cache and its pictures' features, so
// interleaved, concurrent, aborted or evicted, every conversation gives exactly the tokens it gives
// alone on a model of its own.
import { AbortError, DisposedError } from '@llava-mini/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { LlavaMini, type NodeInput } from '../src/node.js';
import { type Fixture, fixture, IMAGE, VIDEO } from './fixtures.js';

const MAX_NEW = 5;
// Each test loads several models and runs video on WASM: minutes on a saturated 2-core machine (25 s idle).
const SLOW = 600_000;
const QUESTIONS = ['What is in this picture?', 'And what colour is it?'];

/** A second picture, as raw RGB pixels: a diagonal gradient. */
const GRADIENT = (() => {
  const width = 64;
  const height = 48;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([(x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256], (y * width + x) * 3);
  return { width, height, data };
})();

type Device = 'cpu' | 'wasm';
const open = (f: Fixture, device: Device, kvCacheBytes?: number) => LlavaMini.fromPretrained(f.model, { device, kvCacheBytes });

/** Each input's answers to QUESTIONS, on a model of its own (the ground truth). */
async function alone(f: Fixture, device: Device, inputs: NodeInput[]): Promise<number[][][]> {
  const out: number[][][] = [];
  for (const input of inputs) {
    const model = await open(f, device);
    const chat = model.chat(input);
    const turns: number[][] = [];
    for (const q of QUESTIONS) turns.push((await chat.ask(q, { maxNewTokens: MAX_NEW }).done()).ids);
    out.push(turns);
    await model.dispose();
  }
  return out;
}

describe('conversations sharing one model', () => {
  let standard: Fixture;
  let hd: Fixture;
  beforeAll(async () => {
    standard = await fixture('standard', {});
    hd = await fixture('hd', { resolutionRatio: 2, compressorSize: 2, imageSize: 112 });
  });

  const cases = [
    { name: 'image, video and raw pixels', fixture: () => standard, inputs: [IMAGE, { video: VIDEO }, GRADIENT] as NodeInput[] },
    { name: 'HD images', fixture: () => hd, inputs: [IMAGE, GRADIENT] as NodeInput[] },
  ];

  for (const c of cases) {
    for (const device of ['cpu', 'wasm'] as const) {
      it(`${c.name}, ${device}: interleaved turn by turn, and concurrent, each gives its solo tokens`, async () => {
        const f = c.fixture();
        const expected = await alone(f, device, c.inputs);
        // The inputs' answers differ, so a conversation answering from another's cache would show.
        expect(new Set(expected.map((e) => JSON.stringify(e))).size).toBe(c.inputs.length);

        const model = await open(f, device);
        try {
          // Interleaved, with one-off questions about another input in between (which used to take over the cache).
          const chats = c.inputs.map((input) => model.chat(input));
          const interleaved: number[][][] = chats.map(() => []);
          for (let q = 0; q < QUESTIONS.length; q++) {
            for (let i = 0; i < chats.length; i++) {
              interleaved[i].push((await chats[i].ask(QUESTIONS[q], { maxNewTokens: MAX_NEW }).done()).ids);
              const other = c.inputs[(i + 1) % c.inputs.length];
              expect((await model.ask(other, QUESTIONS[0], { maxNewTokens: MAX_NEW }).done()).ids).toEqual(expected[(i + 1) % c.inputs.length][0]);
            }
          }
          expect(interleaved).toEqual(expected);
          chats.forEach((chat) => chat.dispose());

          // Concurrent: every turn of every conversation asked at once, none awaited in between.
          // Turns of one conversation run in order; runs of all of them are queued on the model.
          const concurrent = c.inputs.map((input) => model.chat(input));
          const answers = concurrent.map((chat) => QUESTIONS.map((q) => chat.ask(q, { maxNewTokens: MAX_NEW })));
          const got = await Promise.all(answers.map((turns) => Promise.all(turns.map(async (a) => (await a.done()).ids))));
          expect(got).toEqual(expected);
          concurrent.forEach((chat) => chat.dispose());
          // One-off asks and disposed conversations hold nothing; the model holds a video's opening rows, a memo.
          expect(model.parts.llm.cacheBytes).toBe(model.parts.openings.stats.bytes);
        } finally {
          await model.dispose();
        }
      }, SLOW);
    }
  }

  it('aborting one conversation mid-answer leaves the others exact; the aborted one starts over cleanly', async () => {
    const inputs: NodeInput[] = [IMAGE, GRADIENT, { video: VIDEO }];
    const expected = await alone(standard, 'cpu', inputs);
    const model = await open(standard, 'cpu');
    try {
      const chats = inputs.map((input) => model.chat(input));
      const controller = new AbortController();
      const seen: number[] = [];
      const aborted = chats[0].ask(QUESTIONS[0], { maxNewTokens: 50, signal: controller.signal });
      const others = chats.slice(1).map((chat) => chat.ask(QUESTIONS[0], { maxNewTokens: MAX_NEW }).done());
      await expect(
        (async () => {
          for await (const t of aborted) {
            seen.push(t.id);
            if (seen.length === 2) controller.abort();
          }
        })(),
      ).rejects.toBeInstanceOf(AbortError);
      expect((await Promise.all(others)).map((r) => r.ids)).toEqual([expected[1][0], expected[2][0]]);
      expect(chats[0].cacheBytes).toBe(0); // its cache was freed, nobody else's
      expect(chats[1].cacheBytes).toBeGreaterThan(0);
      // The others go on with their follow-ups; the aborted one asks again from the start.
      expect((await chats[1].ask(QUESTIONS[1], { maxNewTokens: MAX_NEW }).done()).ids).toEqual(expected[1][1]);
      expect((await chats[0].ask(QUESTIONS[0], { maxNewTokens: MAX_NEW }).done()).ids).toEqual(expected[0][0]);
      // Leaving a for-await early stops that answer only.
      const left = chats[2].ask(QUESTIONS[1], { maxNewTokens: 50 });
      for await (const _ of left) break;
      await expect(left.done()).rejects.toBeInstanceOf(AbortError);
    } finally {
      await model.dispose();
    }
  }, SLOW);

  it('the KV byte cap evicts idle conversations (least recently used first), which recompute exactly on their next turn', async () => {
    const inputs: NodeInput[] = [IMAGE, GRADIENT, { video: VIDEO }];
    const expected = await alone(standard, 'cpu', inputs);
    const probe = await open(standard, 'cpu');
    const { numLayers, numKvHeads, headDim } = probe.parts.llm.kv;
    await probe.dispose();
    const oneCache = 2 * numLayers * numKvHeads * 256 * headDim * 4; // a conversation at its first capacity (256 positions, fp32)
    const model = await open(standard, 'cpu', 2 * oneCache);
    try {
      const chats = inputs.map((input) => model.chat(input));
      for (const chat of chats) await chat.ask(QUESTIONS[0], { maxNewTokens: MAX_NEW }).done();
      // Two fit under the cap: the third evicted the least recently used idle one, the first.
      expect(chats.map((chat) => chat.cacheBytes)).toEqual([0, oneCache, oneCache]);
      expect(model.parts.llm.cacheBytes).toBeLessThanOrEqual(2 * oneCache);
      // Its follow-up rebuilds its cache first (evicting the next idle one) and answers as if nothing happened.
      const encoded = model.vision.encoderRuns;
      expect((await chats[0].ask(QUESTIONS[1], { maxNewTokens: MAX_NEW }).done()).ids).toEqual(expected[0][1]);
      expect(model.vision.encoderRuns).toBe(encoded); // from its own kept features: the image is not encoded again
      expect(chats.map((chat) => chat.cacheBytes)).toEqual([oneCache, 0, oneCache]);
      expect((await chats[1].ask(QUESTIONS[1], { maxNewTokens: MAX_NEW }).done()).ids).toEqual(expected[1][1]);
      expect((await chats[2].ask(QUESTIONS[1], { maxNewTokens: MAX_NEW }).done()).ids).toEqual(expected[2][1]);
    } finally {
      await model.dispose();
    }
  }, SLOW);

  it('dispose() frees a conversation at once; asking it again is a typed error', async () => {
    const model = await open(standard, 'cpu');
    try {
      const chat = model.chat(IMAGE);
      await chat.ask(QUESTIONS[0], { maxNewTokens: 2 }).done();
      expect(chat.cacheBytes).toBeGreaterThan(0);
      expect(model.parts.llm.cacheBytes).toBe(chat.cacheBytes);
      chat.dispose();
      expect([chat.cacheBytes, model.parts.llm.cacheBytes]).toEqual([0, 0]);
      expect(() => chat.ask(QUESTIONS[1])).toThrow(DisposedError);
      // Disposing during an answer stops it.
      const running = model.chat(IMAGE);
      const answer = running.ask(QUESTIONS[0], { maxNewTokens: 50, onToken: (t) => t.index === 1 && running.dispose() });
      await expect(answer.done()).rejects.toBeInstanceOf(AbortError);
      expect(model.parts.llm.cacheBytes).toBe(0);
    } finally {
      await model.dispose();
    }
  }, SLOW);
});
