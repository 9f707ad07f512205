import { describe, expect, it } from 'vitest';
import { argmax as refArgmax, maxAbsDiff, RefLlama, refLlamaConfig, testBackends } from '@llava-mini/reference';
import type { TinyOptions } from '@llava-mini/tiny';
import { LlamaModel } from '../src/index.js';
import { openModel, tinyLlm, type TinyLlm } from './helpers.js';

const backends = await testBackends();

const CASES: { name: string; options: TinyOptions }[] = [
  { name: 'GQA (4 heads, 2 KV heads), llama3 RoPE scaling, separate lm_head', options: { seed: 11 } },
  { name: 'GQA (4 heads, 1 KV head), linear RoPE scaling, tied embeddings', options: { seed: 12, numKeyValueHeads: 1, tieWordEmbeddings: true, ropeScaling: { rope_type: 'linear', factor: 4 } } },
  { name: 'MHA (2 heads of 32), no RoPE scaling, 3 layers', options: { seed: 13, numAttentionHeads: 2, numKeyValueHeads: 2, numHiddenLayers: 3, ropeScaling: null, ropeTheta: 10000 } },
];

/** The reference's logits for a prompt followed by one-token steps. */
function referenceLogits(tiny: TinyLlm, prompt: number[], steps: number[]): Float32Array[] {
  const ref = new RefLlama(tiny.src, refLlamaConfig(tiny.json));
  return [ref.step(ref.embed(prompt)), ...steps.map((id) => ref.step(ref.embed([id])))];
}

/** Greedy tokens, re-running the whole sequence every step (no cache reuse). */
async function greedyByRecompute(model: LlamaModel, prompt: number[], n: number): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    model.reset();
    seq.push(refArgmax(await model.prefill(await model.embed(seq))));
  }
  return seq.slice(prompt.length);
}

describe.each(CASES)('backbone: $name', ({ options }) => {
  const prompt = [3, 77, 140, 9, 260, 31, 500, 12, 45];
  const steps = [7, 301, 88, 2];

  it.each(backends)('logits match the plain-TS reference on $label (prefill, then cached steps)', async ({ backend, device }) => {
    const tiny = await tinyLlm({ std: 0.1, ...options });
    const expected = referenceLogits(tiny, prompt, steps);
    const model = await openModel(tiny, backend, device);
    try {
      const got = [await model.prefill(await model.embed(prompt))];
      for (const id of steps) got.push(await model.step(id));
      expect(model.length).toBe(prompt.length + steps.length);
      got.forEach((logits, i) => {
        expect(logits.length).toBe(tiny.config.vocabSize);
        expect(maxAbsDiff(logits, expected[i])).toBeLessThanOrEqual(1e-4);
      });
      // Not a vacuous match: the logits spread well beyond the tolerance.
      expect(Math.max(...expected[0]) - Math.min(...expected[0])).toBeGreaterThan(0.5);
    } finally {
      await model.dispose();
    }
  });

  it.each(backends)('cached greedy generation gives exactly the tokens of full recomputation on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ std: 0.1, ...options });
    const model = await openModel(tiny, backend, device);
    try {
      const cached = [refArgmax(await model.prefill(await model.embed(prompt)))];
      while (cached.length < 12) cached.push(refArgmax(await model.step(cached[cached.length - 1])));
      expect(await greedyByRecompute(model, prompt, 12)).toEqual(cached);
      // And the reference, token by token.
      const ref = new RefLlama(tiny.src, refLlamaConfig(tiny.json));
      const refTokens = [refArgmax(ref.step(ref.embed(prompt)))];
      while (refTokens.length < 12) refTokens.push(refArgmax(ref.step(ref.embed([refTokens[refTokens.length - 1]]))));
      expect(cached).toEqual(refTokens);
    } finally {
      await model.dispose();
    }
  });
});

describe('backbone mechanics', () => {
  it.each(backends)('chunked prefill, appended prompts and truncation agree with one pass on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 21, std: 0.1 });
    const ids = Array.from({ length: 23 }, (_, i) => (i * 37 + 5) % tiny.config.vocabSize);
    const whole = await openModel(tiny, backend, device);
    const chunked = await openModel(tiny, backend, device, {}, { prefillChunk: 4 });
    try {
      const once = await whole.prefill(await whole.embed(ids));
      expect(maxAbsDiff(await chunked.prefill(await chunked.embed(ids)), once)).toBeLessThanOrEqual(1e-5);
      // A follow-up prompt appends to the cache (a second turn), same as running it all at once.
      chunked.reset();
      await chunked.prefill(await chunked.embed(ids.slice(0, 10)));
      expect(maxAbsDiff(await chunked.prefill(await chunked.embed(ids.slice(10))), once)).toBeLessThanOrEqual(1e-5);
      // Rolling back to 10 positions and re-running the rest overwrites the rows in place.
      chunked.truncate(10);
      expect(chunked.length).toBe(10);
      expect(maxAbsDiff(await chunked.prefill(await chunked.embed(ids.slice(10))), once)).toBeLessThanOrEqual(1e-5);
    } finally {
      await whole.dispose();
      await chunked.dispose();
    }
  });

  it.each(backends)('the embeddings graph returns rows of model.embed_tokens on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 22 });
    const model = await openModel(tiny, backend, device);
    try {
      const ids = [0, 5, tiny.config.vocabSize - 1, 5];
      const e = await model.embed(ids);
      expect(e.dims).toEqual([1, 4, tiny.config.hiddenSize]);
      const table = tiny.src.float32('model.embed_tokens.weight');
      const H = tiny.config.hiddenSize;
      ids.forEach((id, s) => expect(Array.from((e.data as Float32Array).subarray(s * H, (s + 1) * H))).toEqual(Array.from(table.subarray(id * H, (id + 1) * H))));
    } finally {
      await model.dispose();
    }
  });
});
