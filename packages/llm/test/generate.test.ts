import { describe, expect, it } from 'vitest';
import { AbortError } from '@llava-mini/core';
import { testBackends } from '@llava-mini/reference';
import { argmax, generate, type GeneratedToken, IMAGE_TOKEN_INDEX, LlavaChat, Sampler } from '../src/index.js';
import { loadTokenizer } from '../src/node.js';
import { openModel, tinyLlm } from './helpers.js';

const backends = await testBackends();
const tiny = await tinyLlm({ seed: 41, std: 0.1 });
const tokenizer = loadTokenizer(tiny.dir);
const prompt = tokenizer.encode('What is in this image? Describe the picture.');

describe.each(backends)('generate on $label', ({ backend, device }) => {
  it('greedy by default: the argmax chain, streamed as an async iterable and through onToken', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const expected = [argmax(await model.prefill(await model.embed(prompt)))];
      while (expected.length < 10) expected.push(argmax(await model.step(expected[expected.length - 1])));
      model.reset();

      const called: GeneratedToken[] = [];
      const streamed: GeneratedToken[] = [];
      const gen = generate(model, prompt, { maxNewTokens: 10, stopIds: [], tokenizer, onToken: (t) => called.push(t) });
      for await (const t of gen) streamed.push(t);
      const result = await gen.done();
      expect(result.ids).toEqual(expected);
      expect(streamed.map((t) => t.id)).toEqual(expected);
      expect(called).toEqual(streamed);
      expect(streamed.map((t) => t.index)).toEqual([...expected.keys()]);
      expect(result.text).toBe(streamed.map((t) => t.text).join('').trim());
      expect(result.text).toBe(tokenizer.decode(expected).trim());
      expect(result.finishReason).toBe('length');
      // Every generated token but the last went into the cache.
      expect(result.unfed).toEqual([expected[9]]);
      expect(model.length).toBe(prompt.length + 9);
      const s = result.stats;
      expect(s.promptTokens).toBe(prompt.length);
      expect(s.generatedTokens).toBe(10);
      expect(s.timeToFirstTokenMs).toBeGreaterThan(0);
      expect(s.prefillTokensPerSecond).toBeGreaterThan(0);
      expect(s.decodeTokensPerSecond).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  });

  it('stops at a stop id (not shown, not cached) and at a stop string (text cut before it)', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const free = await generate(model, prompt, { maxNewTokens: 8, stopIds: [], tokenizer }).done();
      model.reset();
      const stopAt = free.ids.findIndex((id, i) => i >= 2 && !free.ids.slice(0, i).includes(id));
      const byId = await generate(model, prompt, { maxNewTokens: 8, stopIds: [free.ids[stopAt]], tokenizer }).done();
      expect(byId.ids).toEqual(free.ids.slice(0, stopAt));
      expect(byId.finishReason).toBe('stop');
      expect(byId.unfed).toEqual([free.ids[stopAt]]);
      expect(model.length).toBe(prompt.length + stopAt);

      model.reset();
      const text = tokenizer.decode(free.ids);
      const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
      const byString = await generate(model, prompt, { maxNewTokens: 8, stopIds: [], stopStrings: [stop], tokenizer }).done();
      expect(byString.finishReason).toBe('stop');
      expect(byString.text).toBe(text.slice(0, text.indexOf(stop)).trim());
    } finally {
      await model.dispose();
    }
  });

  it('samples reproducibly with a seed; top-k 1 is greedy', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const run = async (o: object) => {
        model.reset();
        return (await generate(model, prompt, { maxNewTokens: 12, stopIds: [], ...o }).done()).ids;
      };
      const a = await run({ temperature: 1.5, topP: 0.95, repetitionPenalty: 1.2, seed: 7 });
      expect(await run({ temperature: 1.5, topP: 0.95, repetitionPenalty: 1.2, seed: 7 })).toEqual(a);
      expect(await run({ temperature: 1.5, topP: 0.95, repetitionPenalty: 1.2, seed: 8 })).not.toEqual(a);
      expect(await run({ temperature: 1.5, topK: 1, seed: 9 })).toEqual(await run({}));
    } finally {
      await model.dispose();
    }
  });

  it('an AbortSignal stops between steps, throws AbortError and frees the cache', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const controller = new AbortController();
      const seen: number[] = [];
      const gen = generate(model, prompt, { maxNewTokens: 50, stopIds: [], signal: controller.signal });
      await expect(
        (async () => {
          for await (const t of gen) {
            seen.push(t.id);
            if (seen.length === 3) controller.abort();
          }
        })(),
      ).rejects.toBeInstanceOf(AbortError);
      expect(seen).toHaveLength(3);
      expect(model.length).toBe(0);
      await expect(gen.done()).rejects.toBeInstanceOf(AbortError);
      // The model works again afterwards.
      expect((await generate(model, prompt, { maxNewTokens: 2, stopIds: [] }).done()).ids).toHaveLength(2);
    } finally {
      await model.dispose();
    }
  });

  it('a follow-up turn appends to the cache and continues exactly as a full re-run would', async () => {
    const model = await openModel(tiny, backend, device);
    const fresh = await openModel(tiny, backend, device);
    try {
      const chat = new LlavaChat(model, tokenizer, { image: false, addAssistantHeader: true });
      const first = await chat.ask('What is in this image?', { maxNewTokens: 6 }).done();
      const afterFirst = model.length;
      const runsBefore = model.profile.runs;
      const second = chat.ask('What color is the car?', { maxNewTokens: 6 });
      const result = await second.done();
      expect(chat.history.map((t) => t.user)).toEqual(['What is in this image?', 'What color is the car?']);
      expect(chat.history[0].assistant).toBe(first.text);
      // The first prompt stayed in the cache: the follow-up ran only its own tokens.
      const context = chat.context;
      expect(model.length).toBe(context.length);
      expect(context.length).toBeGreaterThan(afterFirst);
      expect(model.profile.runs - runsBefore).toBe(2 + 2 * (result.ids.length - result.unfed.length)); // one prefill (+ its embed), then a step per fed token
      // A fresh model given the whole conversation at once generates the same answer.
      const promptIds = context.slice(0, context.length - (result.ids.length - result.unfed.length));
      expect((await generate(fresh, promptIds, { maxNewTokens: 6, tokenizer }).done()).ids).toEqual(result.ids);
    } finally {
      await model.dispose();
      await fresh.dispose();
    }
  });
});

describe('LlavaChat with an image', () => {
  it('hands the image prompt to the embed hook once, then only the new text', async () => {
    const [{ backend, device }] = backends;
    const model = await openModel(tiny, backend, device);
    try {
      const calls: number[][] = [];
      // Stands in for the pipeline: the vision token becomes one row (here: token 0's embedding).
      const embed = (ids: number[]) => {
        calls.push(ids);
        return model.embed(ids.map((id) => (id === IMAGE_TOKEN_INDEX ? 0 : id)));
      };
      const chat = new LlavaChat(model, tokenizer, { addAssistantHeader: true });
      await chat.ask('What is in this image?', { embed, maxNewTokens: 3 }).done();
      await chat.ask('What color is it?', { embed, maxNewTokens: 3 }).done();
      expect(calls).toHaveLength(2);
      expect(calls[0].filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
      expect(calls[0].slice(0, 2)).toEqual([tokenizer.bosId, tokenizer.bosId]);
      expect(calls[1]).not.toContain(IMAGE_TOKEN_INDEX);
      expect(calls[1]).not.toContain(tokenizer.bosId);
      expect(tokenizer.decode(calls[1], { skipSpecialTokens: false })).toContain('<|start_header_id|>user<|end_header_id|>\n\nWhat color is it?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
      expect(chat.context.filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
      // Without a hook an image prompt is refused before any work.
      chat.reset();
      await expect(chat.ask('Again?', { maxNewTokens: 1 }).done()).rejects.toThrow(/embed/);
    } finally {
      await model.dispose();
    }
  });
});

describe('Sampler', () => {
  it('keeps only the top-k / top-p candidates and applies the repetition penalty', () => {
    const logits = () => Float32Array.from([0, 3, 2.9, 2.8, -5, 1]);
    const draws = (o: object) => new Set(Array.from({ length: 300 }, (_, i) => new Sampler({ temperature: 1, seed: i, ...o }).next(logits())));
    expect(draws({ topK: 2 })).toEqual(new Set([1, 2]));
    expect(draws({ topP: 0.5 })).toEqual(new Set([1, 2]));
    expect(draws({}).size).toBeGreaterThanOrEqual(4); // unrestricted: the four likely tokens all come up
    const s = new Sampler({ repetitionPenalty: 2 });
    expect(s.next(logits())).toBe(1);
    expect(s.next(logits())).toBe(2); // 3 / 2 = 1.5 < 2.9
  });
});
