import { describe, expect, it } from 'vitest';
import { AbortError, DisposedError, KvCacheFullError } from '@llava-mini/core';
import { testBackends } from '@llava-mini/reference';
import { generate, type LlamaModel } from '../src/index.js';
import { openModel, tinyLlm } from './helpers.js';

// Many sequences on one loaded model: each owns its KV cache, so any interleaving gives each one
// exactly the tokens it gives alone.
const backends = await testBackends();
const tiny = await tinyLlm({ seed: 43, std: 0.1 });
const prompts = [
  [3, 77, 140, 9, 260, 31, 500, 12, 45],
  [8, 19, 402, 77, 5],
  [311, 12, 12, 90, 41, 7, 66],
];
const N = 8;

async function solo(model: LlamaModel, prompt: number[]): Promise<number[]> {
  const seq = model.sequence();
  try {
    return (await generate(seq, prompt, { maxNewTokens: N, stopIds: [] }).done()).ids;
  } finally {
    seq.dispose();
  }
}

describe.each(backends)('sequences on one model, $label', ({ backend, device }) => {
  it('interleaved step by step, and concurrent, give exactly their solo tokens', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const alone = [];
      for (const p of prompts) alone.push(await solo(model, p));
      // The solo answers differ, so a mixed-up cache would show.
      expect(new Set(alone.map((a) => a.join())).size).toBe(prompts.length);

      // By hand: prefill all, then one step of each in turn.
      const seqs = prompts.map(() => model.sequence());
      const got: number[][] = prompts.map(() => []);
      const argmax = (l: Float32Array) => l.indexOf(Math.max(...l));
      for (let i = 0; i < prompts.length; i++) got[i].push(argmax(await seqs[i].prefill(await model.embed(prompts[i]))));
      for (let t = 1; t < N; t++) for (let i = 0; i < prompts.length; i++) got[i].push(argmax(await seqs[i].step(got[i][t - 1])));
      expect(got).toEqual(alone);
      seqs.forEach((s) => s.dispose());

      // Concurrent generations: their runs are queued by the backend and interleave.
      const concurrent = await Promise.all(prompts.map((p) => generate(model.sequence(), p, { maxNewTokens: N, stopIds: [] }).done()));
      expect(concurrent.map((r) => r.ids)).toEqual(alone);
    } finally {
      await model.dispose();
    }
  });

  it('aborting one generation leaves the others exact', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const alone = await solo(model, prompts[1]);
      const controller = new AbortController();
      const aborted = generate(model.sequence(), prompts[0], { maxNewTokens: 50, stopIds: [], signal: controller.signal, onToken: (t) => t.index === 2 && controller.abort() });
      const other = generate(model.sequence(), prompts[1], { maxNewTokens: N, stopIds: [] });
      const [a, b] = await Promise.allSettled([aborted.done(), other.done()]);
      expect(a.status === 'rejected' && a.reason).toBeInstanceOf(AbortError);
      expect(b.status === 'fulfilled' && b.value.ids).toEqual(alone);
    } finally {
      await model.dispose();
    }
  });
});

describe('the KV byte cap', () => {
  const [{ backend, device }] = backends;
  const c = tiny.config;
  const oneCache = 2 * c.numLayers * c.numKvHeads * 256 * c.headDim * 4; // one sequence at its first capacity (256 positions, fp32)

  it('evicts idle sequences (least recently used first); an evicted one starts empty and recomputes exactly', async () => {
    const model = await openModel(tiny, backend, device, {}, { kvCacheBytes: 2 * oneCache });
    try {
      const alone = await solo(model, prompts[2]);
      const [a, b, c2] = [model.sequence(), model.sequence(), model.sequence()];
      await generate(a, prompts[0], { maxNewTokens: 2, stopIds: [] }).done();
      await generate(b, prompts[1], { maxNewTokens: 2, stopIds: [] }).done();
      expect(model.cacheBytes).toBe(2 * oneCache);
      // A third sequence needs room: the least recently used idle one (a) gives up its cache.
      expect((await generate(c2, prompts[2], { maxNewTokens: N, stopIds: [] }).done()).ids).toEqual(alone);
      expect([a.evictions, b.evictions, c2.evictions]).toEqual([1, 0, 0]);
      expect([a.length, a.cacheBytes]).toEqual([0, 0]);
      expect(b.length).toBe(prompts[1].length + 1);
      expect(model.cacheBytes).toBeLessThanOrEqual(2 * oneCache);
      // The evicted sequence runs again from nothing (its owner re-feeds what it held) and is exact.
      expect((await generate(a, prompts[2], { maxNewTokens: N, stopIds: [] }).done()).ids).toEqual(alone);
      expect(b.evictions).toBe(1); // now b was the least recently used idle one
    } finally {
      await model.dispose();
    }
  });

  it('a generating sequence is never evicted: beyond the cap the newcomer gets KvCacheFullError and the other goes on', async () => {
    const model = await openModel(tiny, backend, device, {}, { kvCacheBytes: oneCache });
    try {
      const alone = await solo(model, prompts[0]);
      let second: Promise<unknown> | undefined;
      const first = generate(model.sequence(), prompts[0], {
        maxNewTokens: N,
        stopIds: [],
        onToken: (t) => {
          if (t.index !== 1) return;
          second = generate(model.sequence(), prompts[1], { maxNewTokens: 2, stopIds: [] }).done();
          second.catch(() => {}); // awaited below
        },
      });
      expect((await first.done()).ids).toEqual(alone);
      await expect(second).rejects.toBeInstanceOf(KvCacheFullError);
      await expect(second).rejects.toMatchObject({ code: 'KV_CACHE_FULL' });
    } finally {
      await model.dispose();
    }
  });

  it('dispose() frees a sequence at once; using it afterwards is a typed error', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const seq = model.sequence();
      await generate(seq, prompts[0], { maxNewTokens: 2, stopIds: [] }).done();
      expect(model.cacheBytes).toBe(oneCache);
      seq.dispose();
      expect(model.cacheBytes).toBe(0);
      await expect(seq.prefill(await model.embed([1, 2]))).rejects.toBeInstanceOf(DisposedError);
    } finally {
      await model.dispose();
    }
  });
});
