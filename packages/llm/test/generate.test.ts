import { describe, expect, it } from 'vitest';
import { AbortError } from '@llava-mini/core';
import { testBackends } from '@llava-mini/core/testing';
import { argmax, generate, type GeneratedToken, Sampler } from '../src/index.js';
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
      const byHand = model.sequence();
      const expected = [argmax(await byHand.prefill(await model.embed(prompt)))];
      while (expected.length < 10) expected.push(argmax(await byHand.step(expected[expected.length - 1])));
      byHand.dispose();

      const called: GeneratedToken[] = [];
      const streamed: GeneratedToken[] = [];
      const seq = model.sequence();
      const gen = generate(seq, prompt, { maxNewTokens: 10, stopIds: [], tokenizer, onToken: (t) => called.push(t) });
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
      expect(seq.length).toBe(prompt.length + 9);
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
      const free = await generate(model.sequence(), prompt, { maxNewTokens: 8, stopIds: [], tokenizer }).done();
      const stopAt = free.ids.findIndex((id, i) => i >= 2 && !free.ids.slice(0, i).includes(id));
      const seq = model.sequence();
      const byId = await generate(seq, prompt, { maxNewTokens: 8, stopIds: [free.ids[stopAt]], tokenizer }).done();
      expect(byId.ids).toEqual(free.ids.slice(0, stopAt));
      expect(byId.finishReason).toBe('stop');
      expect(seq.length).toBe(prompt.length + stopAt); // the stop id is not fed

      const text = tokenizer.decode(free.ids);
      const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
      const byString = await generate(model.sequence(), prompt, { maxNewTokens: 8, stopIds: [], stopStrings: [stop], tokenizer }).done();
      expect(byString.finishReason).toBe('stop');
      expect(byString.text).toBe(text.slice(0, text.indexOf(stop)).trim());
    } finally {
      await model.dispose();
    }
  });

  it('samples reproducibly with a seed; top-k 1 is greedy', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const run = async (o: object) => (await generate(model.sequence(), prompt, { maxNewTokens: 12, stopIds: [], ...o }).done()).ids;
      const a = await run({ temperature: 1.5, topP: 0.95, repetitionPenalty: 1.2, seed: 7 });
      expect(await run({ temperature: 1.5, topP: 0.95, repetitionPenalty: 1.2, seed: 7 })).toEqual(a);
      expect(await run({ temperature: 1.5, topP: 0.95, repetitionPenalty: 1.2, seed: 8 })).not.toEqual(a);
      expect(await run({ temperature: 1.5, topK: 1, seed: 9 })).toEqual(await run({}));
    } finally {
      await model.dispose();
    }
  });

  it("logprobs: each token's log-probability and the top 5, a softmax of the model's own logits", async () => {
    const model = await openModel(tiny, backend, device);
    try {
      // Sampled with a penalty and a temperature: logprobs still describe the logits before them.
      const options = { maxNewTokens: 6, stopIds: [], tokenizer, temperature: 1.3, repetitionPenalty: 1.5, seed: 3 };
      const tokens: GeneratedToken[] = [];
      for await (const t of generate(model.sequence(), prompt, { ...options, logprobs: true, topLogprobs: 5 })) tokens.push(t);
      const plain = await generate(model.sequence(), prompt, options).done();
      expect(tokens.map((t) => t.id)).toEqual(plain.ids); // asking for logprobs changes no token

      // The same logits by hand, and their softmax in float64 written out plainly.
      const byHand = model.sequence();
      let logits = await byHand.prefill(await model.embed(prompt));
      for (const t of tokens) {
        const z = Array.from(logits, (l) => Math.exp(l)).reduce((a, b) => a + b, 0);
        const logp = (i: number) => Math.log(Math.exp(logits[i]) / z);
        const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
        const lp = t.logprobs!;
        expect(lp.id).toBe(t.id);
        expect(lp.logprob).toBeCloseTo(logp(t.id), 4);
        expect(lp.top.map((x) => x.id)).toEqual(order.slice(0, 5));
        lp.top.forEach((x) => expect(x.logprob).toBeCloseTo(logp(x.id), 4));
        expect(lp.token).toBe(tokenizer.decode([t.id], { skipSpecialTokens: false }));
        logits = await byHand.step(t.id);
      }
      // The tokens' bytes, joined, are the text (a token may hold part of a character).
      const bytes = Uint8Array.from(tokens.flatMap((t) => t.logprobs!.bytes));
      expect(new TextDecoder().decode(bytes)).toBe(tokenizer.decode(plain.ids, { skipSpecialTokens: false }));
      // Without the option, tokens carry none.
      expect(plain.ids.length).toBeGreaterThan(0);
      for await (const t of generate(model.sequence(), prompt, { maxNewTokens: 2, stopIds: [] })) expect(t.logprobs).toBeUndefined();
    } finally {
      await model.dispose();
    }
  });

  it('an AbortSignal stops between steps, throws AbortError and frees the cache', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const controller = new AbortController();
      const seen: number[] = [];
      const seq = model.sequence();
      const gen = generate(seq, prompt, { maxNewTokens: 50, stopIds: [], signal: controller.signal });
      await expect(
        (async () => {
          for await (const t of gen) {
            seen.push(t.id);
            if (seen.length === 3) controller.abort();
          }
        })(),
      ).rejects.toBeInstanceOf(AbortError);
      expect(seen).toHaveLength(3);
      expect(seq.length).toBe(0);
      expect(seq.cacheBytes).toBe(0);
      await expect(gen.done()).rejects.toBeInstanceOf(AbortError);
      // The sequence works again afterwards.
      expect((await generate(seq, prompt, { maxNewTokens: 2, stopIds: [] }).done()).ids).toHaveLength(2);
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
