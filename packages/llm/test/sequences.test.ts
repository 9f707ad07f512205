import { describe, expect, it } from 'vitest';
import { AbortError, type Backend, DisposedError, KvCacheFullError } from '@llava-mini/core';
import { maxAbsDiff, testBackends } from '@llava-mini/core/testing';
import { generate, generateChoices, type LlamaModel } from '../src/index.js';
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

/** The backend, its sessions saying their runtime does not update a KV buffer in place (so the cache runs in 'append' mode). */
function appendRuntime(backend: Backend): Backend {
  const wrapped = Object.create(backend) as Backend;
  wrapped.createSession = async (...a) => {
    const session = await backend.createSession(...a);
    Object.defineProperty(session, 'capabilities', { value: { ...session.capabilities, kvCacheInPlace: false } });
    return session;
  };
  return wrapped;
}

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

      // Concurrent generations: their decode steps run batched (one run for all three per step).
      const before = model.batchStats ?? { runs: 0, steps: 0 };
      const concurrent = await Promise.all(prompts.map((p) => generate(model.sequence(), p, { maxNewTokens: N, stopIds: [] }).done()));
      expect(concurrent.map((r) => r.ids)).toEqual(alone);
      const after = model.batchStats ?? { runs: 0, steps: 0 };
      expect(after.steps - before.steps).toBe(prompts.length * (N - 1));
      expect(after.runs - before.runs).toBeLessThanOrEqual(N + 1); // about N - 1 runs: all three in each

      // Stepped by hand at the same time (no generation around them): batched too, and each
      // sequence moves into the batch once, not once per step.
      const hand = prompts.map(() => model.sequence());
      let last = await Promise.all(hand.map(async (s, i) => argmax(await s.prefill(prompts[i]))));
      const byHand = last.map((id) => [id]);
      const joins = model.batchStats?.joins ?? 0;
      for (let t = 1; t < N; t++) {
        last = await Promise.all(hand.map(async (s, i) => argmax(await s.step(last[i]))));
        last.forEach((id, i) => byHand[i].push(id));
      }
      expect(byHand).toEqual(alone);
      expect((model.batchStats?.joins ?? 0) - joins).toBe(prompts.length);
      hand.forEach((s) => s.dispose());
    } finally {
      await model.dispose();
    }
  });

  it('a sequence joining between the steps of others (continuous batching) and one leaving early: each gives its solo tokens', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const alone = [];
      for (const p of prompts) alone.push(await solo(model, p));
      const seqs = prompts.map(() => model.sequence());
      const later: Promise<{ ids: number[] }>[] = [];
      // The first starts alone; the second joins after its 2nd token, the third after its 4th; the second stops at 3 tokens.
      const first = generate(seqs[0], prompts[0], {
        maxNewTokens: N,
        stopIds: [],
        onToken: (t) => {
          if (t.index === 1) later.push(generate(seqs[1], prompts[1], { maxNewTokens: 3, stopIds: [] }).done());
          if (t.index === 3) later.push(generate(seqs[2], prompts[2], { maxNewTokens: N, stopIds: [] }).done());
        },
      }).done();
      const results = [await first, ...(await Promise.all(later))];
      expect(results.map((r) => r.ids)).toEqual([alone[0], alone[1].slice(0, 3), alone[2]]);
      expect(model.batchStats?.runs).toBeLessThan(model.batchStats?.steps ?? 0); // some steps did share a run
      // Out of the arena, every sequence holds its own rows: a follow-up on each is its solo continuation.
      const follow = [5, 9, 13];
      const direct = await Promise.all(seqs.map((s, i) => s.prefill([follow[i]])));
      const reference: Float32Array[] = [];
      for (let i = 0; i < prompts.length; i++) {
        const s = model.sequence();
        const fed = [...prompts[i], ...results[i].ids.slice(0, -1), follow[i]];
        reference.push(await s.prefill(fed));
        s.dispose();
      }
      // (A one-pass prefill sums in another order than steps: equal up to float rounding.)
      direct.forEach((logits, i) => expect(maxAbsDiff(logits, reference[i])).toBeLessThanOrEqual(1e-5));
      seqs.forEach((s) => s.dispose());
      expect(model.cacheBytes).toBe(0);
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

  it.each(['rows', 'shared', 'append'] as const)('fork() (KV cache %s): each fork continues exactly as a fresh sequence with the prompt, on a cache of its own', async (mode) => {
    // 'append' is the shared graph on a runtime that returns past + new rows (WebGPU's): here, the same runtime told so.
    const runtime = mode === 'append' ? appendRuntime(backend) : backend;
    const model = await openModel(tiny, runtime, device, { kvCache: mode === 'rows' ? 'rows' : 'shared' });
    expect(model.kv.mode).toBe(mode);
    try {
      const argmax = (l: Float32Array) => l.indexOf(Math.max(...l));
      const alone = await solo(model, prompts[0]);
      const seq = model.sequence();
      const first = argmax(await seq.prefill(prompts[0]));
      const forks = [await seq.fork(), await seq.fork()];
      const bytes = seq.cacheBytes;
      expect(forks.map((f) => [f.length, f.cacheBytes])).toEqual([[seq.length, bytes], [seq.length, bytes]]);
      expect(model.cacheBytes).toBe(3 * bytes); // claimed from the pool, as the source's were
      // The three step together (batched where the mode allows): each gives the solo tokens.
      const all = [seq, ...forks];
      let last = all.map(() => first);
      const got = all.map(() => [first]);
      for (let t = 1; t < N; t++) {
        last = await Promise.all(all.map(async (s, i) => argmax(await s.step(last[i]))));
        last.forEach((id, i) => got[i].push(id));
      }
      expect(got).toEqual([alone, alone, alone]);

      // A fork taken mid-answer (out of the decode batch, where its latest rows were) continues as its
      // source does, even after the others are cut back, refilled or released: nothing is shared.
      const mid = await forks[1].fork();
      forks[0].truncate(2);
      await forks[0].prefill(prompts[1]);
      seq.release();
      const [a, b] = [await mid.step(last[1]), await forks[1].step(last[1])];
      expect(maxAbsDiff(a, b)).toBe(0);
      const reference = model.sequence();
      const fed = await reference.prefill([...prompts[0], ...got[1]]);
      expect(maxAbsDiff(a, fed)).toBeLessThanOrEqual(1e-5); // one prefill sums in another order than steps
      [...all, mid, reference].forEach((s) => s.dispose());
      expect(model.cacheBytes).toBe(0);
    } finally {
      await model.dispose();
    }
  });

  it('generateChoices: n answers from one prefill, decoded together; each is the answer a fresh sequence gives', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const answer = async (seed?: number) => (await generate(model.sequence(), prompts[0], { maxNewTokens: N, stopIds: [], temperature: 1.5, seed })).done();
      const seq = model.sequence();
      const runs = model.profile.runs;
      const greedy = await Promise.all(generateChoices(seq, prompts[0], 3, { maxNewTokens: N, stopIds: [] }).map((g) => g.done()));
      // One prefill and about N - 1 batched steps, instead of three prefills and 3 (N - 1) steps.
      expect(model.profile.runs - runs).toBeLessThanOrEqual(N + 1);
      expect(greedy.map((r) => r.ids)).toEqual(Array(3).fill(await solo(model, prompts[0])));
      // The first answer continues on `seq`; the forks are gone.
      expect(seq.length).toBe(prompts[0].length + N - 1);
      expect(model.cacheBytes).toBe(seq.cacheBytes);

      // Sampled with a seed: answer i is the one seed + i gives alone, so they differ and repeat.
      const sampled = async () => {
        const tokens: number[][] = [[], [], []];
        const gens = generateChoices(model.sequence(), prompts[0], 3, { maxNewTokens: N, stopIds: [], temperature: 1.5, seed: 11 });
        await Promise.all(gens.map(async (g) => {
          for await (const t of g) tokens[t.choice as number].push(t.id);
        }));
        return tokens;
      };
      const first = await sampled();
      expect(first).toEqual([(await answer(11)).ids, (await answer(12)).ids, (await answer(13)).ids]);
      expect(new Set(first.map((ids) => ids.join())).size).toBe(3);
      expect(await sampled()).toEqual(first);
      expect(() => generateChoices(seq, prompts[0], 9)).toThrow(/n must be an integer in \[1, 8\]/);
    } finally {
      await model.dispose();
    }
  });

  it('a sequence disposed while a batched step is running: the others keep their solo tokens', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const alone = [await solo(model, prompts[1]), await solo(model, prompts[2])];
      const victim = model.sequence();
      let runs = 0;
      // As an asynchronous runtime allows: the dispose lands between a run's start and its outputs being written.
      const session = (model as unknown as { session: { run: (...a: unknown[]) => Promise<unknown> } }).session;
      const run = session.run.bind(session);
      session.run = async (...a: unknown[]) => {
        const out = await run(...a);
        if (++runs === 8) victim.dispose();
        return out;
      };
      const gens = [victim, model.sequence(), model.sequence()].map((seq, i) => generate(seq, prompts[i], { maxNewTokens: N, stopIds: [] }));
      const [v, ...others] = await Promise.allSettled(gens.map((g) => g.done()));
      expect(v.status === 'rejected' && v.reason).toBeInstanceOf(DisposedError);
      expect(others.map((o) => o.status === 'fulfilled' && o.value.ids)).toEqual(alone);
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

  it('evicts an expendable sequence (a memo) before any other idle one, even one used longer ago', async () => {
    const model = await openModel(tiny, backend, device, {}, { kvCacheBytes: 2 * oneCache });
    try {
      const [older, memo, newcomer] = [model.sequence(), model.sequence(), model.sequence()];
      await older.prefill(prompts[0]);
      await memo.prefill(prompts[1]);
      memo.makeExpendable();
      await newcomer.prefill(prompts[2]);
      expect([older.evictions, memo.evictions]).toEqual([0, 1]);
      expect(older.length).toBe(prompts[0].length);
    } finally {
      await model.dispose();
    }
  });

  it('a fork claims its bytes from the cap: an idle sequence is evicted for it, its own source never', async () => {
    const model = await openModel(tiny, backend, device, {}, { kvCacheBytes: 2 * oneCache });
    try {
      const [idle, source] = [model.sequence(), model.sequence()];
      await idle.prefill(prompts[1]);
      await source.prefill(prompts[0]);
      const fork = await source.fork();
      expect([idle.evictions, source.length, fork.length]).toEqual([1, prompts[0].length, prompts[0].length]);
      // With the fork running (held), nothing is left to evict: the next fork is refused, nothing else changes.
      const running = fork.hold();
      await expect(source.fork()).rejects.toBeInstanceOf(KvCacheFullError);
      running();
      expect([source.length, fork.length]).toEqual([prompts[0].length, prompts[0].length]);
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
