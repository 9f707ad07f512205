import { describe, expect, it } from 'vitest';
import { maxAbsDiff, testBackends } from '@llava-mini/core/testing';
import { argmax as refArgmax, RefLlama, refLlamaConfig } from '@llava-mini/reference';
import type { TinyOptions } from '@llava-mini/tiny';
import { decodeModel, numel, type Tensor, tensor } from '@llava-mini/core';
import { buildLlamaGraph, LLAMA_IO, LlamaModel, PROMPT_KERNEL_MIN_ROWS } from '../src/index.js';
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
  const ids = [...prompt];
  for (let i = 0; i < n; i++) {
    const seq = model.sequence();
    ids.push(refArgmax(await seq.prefill(await model.embed(ids))));
    seq.dispose();
  }
  return ids.slice(prompt.length);
}

describe.each(CASES)('backbone: $name', ({ options }) => {
  const prompt = [3, 77, 140, 9, 260, 31, 500, 12, 45];
  const steps = [7, 301, 88, 2];

  it.each(backends.flatMap((b) => (['rows', 'shared'] as const).map((kvCache) => ({ ...b, kvCache }))))('logits match the plain-TS reference on $label, KV cache $kvCache (prefill, then cached steps)', async ({ backend, device, kvCache }) => {
    const tiny = await tinyLlm({ std: 0.1, ...options });
    const expected = referenceLogits(tiny, prompt, steps);
    const model = await openModel(tiny, backend, device, { kvCache });
    expect(model.kv.mode).toBe(kvCache);
    try {
      const seq = model.sequence();
      const got = [await seq.prefill(await model.embed(prompt))];
      for (const id of steps) got.push(await seq.step(id));
      expect(seq.length).toBe(prompt.length + steps.length);
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
      const seq = model.sequence();
      const cached = [refArgmax(await seq.prefill(await model.embed(prompt)))];
      while (cached.length < 12) cached.push(refArgmax(await seq.step(cached[cached.length - 1])));
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

describe('backbone: the prompt kernel', () => {
  // Runs of PROMPT_KERNEL_MIN_ROWS rows or more go through GroupQueryAttention, fewer through rowsAttention.
  const long = (n: number, seed: number, vocab: number) => Array.from({ length: n }, (_, i) => (i * 53 + seed) % vocab);

  it.each(backends)('a long prompt, a long follow-up and the steps after them match the plain-TS reference on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 25, std: 0.1 });
    const [first, second] = [long(PROMPT_KERNEL_MIN_ROWS + 7, 3, tiny.config.vocabSize), long(PROMPT_KERNEL_MIN_ROWS + 2, 11, tiny.config.vocabSize)];
    const ref = new RefLlama(tiny.src, refLlamaConfig(tiny.json));
    const expected = [ref.step(ref.embed(first)), ref.step(ref.embed(second)), ref.step(ref.embed([9]))];
    const model = await openModel(tiny, backend, device);
    try {
      const seq = model.sequence();
      const got = [await seq.prefill(await model.embed(first)), await seq.prefill(await model.embed(second)), await seq.step(9)];
      got.forEach((logits, i) => expect(maxAbsDiff(logits, expected[i])).toBeLessThanOrEqual(1e-4));
      expect(Math.max(...expected[1]) - Math.min(...expected[1])).toBeGreaterThan(0.5);
    } finally {
      await model.dispose();
    }
  });

  it('is one If per layer whose branches hold no weights, and promptKernel: false leaves it out', async () => {
    const tiny = await tinyLlm({ seed: 27 });
    const model = (promptKernel?: boolean) => decodeModel(buildLlamaGraph(tiny.src, tiny.config, { maxPositions: 64, promptKernel }).toBytes());
    const ifs = model().graph.node.filter((n) => n.op_type === 'If');
    expect(ifs).toHaveLength(tiny.config.numLayers);
    for (const node of ifs) {
      const branches = node.attribute.map((a) => a.g).filter((g) => g !== undefined);
      expect(branches).toHaveLength(2);
      // Only shape and index constants: the weights (and the RoPE tables) stay in the outer graph, read once.
      for (const b of branches) for (const t of b.initializer) expect(t.raw_data?.length ?? 0).toBeLessThanOrEqual(64); // 8 int64s at most
    }
    expect(model(false).graph.node.map((n) => n.op_type)).not.toContain('If');
  });

  // GroupQueryAttention reads no past_bias (it takes the held rows from the positions), so a held row
  // masked by past_bias is seen by a run that takes the prompt kernel and hidden from one that does not.
  it.each(backends)('runs exactly where it should: one sequence of PROMPT_KERNEL_MIN_ROWS rows, not fewer, not a batch, on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 28, std: 0.1 });
    const c = tiny.config;
    const session = await backend.createSession(buildLlamaGraph(tiny.src, c, { maxPositions: 128 }).toBytes(), { device });
    const run = async (B: number, S: number, masked: boolean, minRows = PROMPT_KERNEL_MIN_ROWS) => {
      const cap = 1 + S;
      const kv = [B, c.numKvHeads, cap, c.headDim];
      const feeds: Record<string, Tensor> = {
        [LLAMA_IO.inputsEmbeds]: tensor('float32', [B, 0, c.hiddenSize], new Float32Array(0)),
        [LLAMA_IO.inputIds]: tensor('int64', [B, S], BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 7 + 3) % c.vocabSize))),
        [LLAMA_IO.positionIds]: tensor('int64', [B, S], BigInt64Array.from({ length: B * S }, (_, i) => BigInt(1 + (i % S)))),
        // Row 0 held (or masked), the rest of the capacity unheld.
        [LLAMA_IO.pastBias]: tensor('float32', [B, 1, 1, 1, cap], Float32Array.from({ length: B * cap }, (_, i) => (i % cap === 0 && !masked ? 0 : -Infinity))),
        [LLAMA_IO.causalBias]: tensor('float32', [S, S], Float32Array.from({ length: S * S }, (_, i) => (i % S <= Math.floor(i / S) ? 0 : -Infinity))),
        [LLAMA_IO.promptKernelMinRows]: tensor('int64', [1], BigInt64Array.of(BigInt(minRows))),
      };
      for (let l = 0; l < c.numLayers; l++) {
        feeds[LLAMA_IO.pastKey(l)] = tensor('float32', kv, Float32Array.from({ length: numel(kv) }, (_, i) => Math.sin(i + l)));
        feeds[LLAMA_IO.pastValue(l)] = tensor('float32', kv, Float32Array.from({ length: numel(kv) }, (_, i) => Math.cos(i * 3 + l)));
      }
      return (await session.run(feeds, [LLAMA_IO.logits]))[LLAMA_IO.logits].data as Float32Array;
    };
    try {
      const effect = async (B: number, S: number, minRows?: number) => maxAbsDiff(await run(B, S, true, minRows), await run(B, S, false, minRows));
      expect(await effect(1, PROMPT_KERNEL_MIN_ROWS)).toBe(0);
      expect(await effect(1, PROMPT_KERNEL_MIN_ROWS + 20)).toBe(0);
      expect(await effect(1, PROMPT_KERNEL_MIN_ROWS - 1)).toBeGreaterThan(1e-3);
      expect(await effect(2, PROMPT_KERNEL_MIN_ROWS + 7)).toBeGreaterThan(1e-3);
      // The minimum is an input: it moves the line both ways.
      expect(await effect(1, PROMPT_KERNEL_MIN_ROWS + 20, Number.MAX_SAFE_INTEGER)).toBeGreaterThan(1e-3);
      expect(await effect(1, 8, 8)).toBe(0);
    } finally {
      await session.dispose();
    }
  });

  it.each(backends)('gives the cache rows the decode kernel gives on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 26, std: 0.1 });
    const ids = long(3 * PROMPT_KERNEL_MIN_ROWS, 7, tiny.config.vocabSize);
    const prompt = await openModel(tiny, backend, device, {}, { prefillChunk: 512 });
    const rows = await openModel(tiny, backend, device, {}, { prefillChunk: PROMPT_KERNEL_MIN_ROWS - 1 });
    try {
      const [a, b] = [prompt.sequence(), rows.sequence()];
      expect(maxAbsDiff(await a.prefill(await prompt.embed(ids)), await b.prefill(await rows.embed(ids)))).toBeLessThanOrEqual(1e-5);
      // The steps read the rows each kernel wrote.
      for (const id of [4, 17, 2]) expect(maxAbsDiff(await a.step(id), await b.step(id))).toBeLessThanOrEqual(1e-5);
    } finally {
      await prompt.dispose();
      await rows.dispose();
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
      const once = await whole.sequence().prefill(await whole.embed(ids));
      expect(maxAbsDiff(await chunked.sequence().prefill(await chunked.embed(ids)), once)).toBeLessThanOrEqual(1e-5);
      // A follow-up prompt appends to the cache (a second turn), same as running it all at once.
      const seq = chunked.sequence();
      await seq.prefill(await chunked.embed(ids.slice(0, 10)));
      expect(maxAbsDiff(await seq.prefill(await chunked.embed(ids.slice(10))), once)).toBeLessThanOrEqual(1e-5);
      // Rolling back to 10 positions and re-running the rest overwrites the rows in place.
      seq.truncate(10);
      expect(seq.length).toBe(10);
      expect(maxAbsDiff(await seq.prefill(await chunked.embed(ids.slice(10))), once)).toBeLessThanOrEqual(1e-5);
    } finally {
      await whole.dispose();
      await chunked.dispose();
    }
  });

  it.each(backends)('the cache grows past its first capacity without changing the results on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 24, std: 0.1 });
    const ids = Array.from({ length: 300 }, (_, i) => (i * 53 + 7) % tiny.config.vocabSize);
    const once = await openModel(tiny, backend, device, {}, { maxSequence: 320, prefillChunk: 512 });
    const grown = await openModel(tiny, backend, device, {}, { maxSequence: 320, prefillChunk: 200 });
    try {
      const s1 = once.sequence();
      const s2 = grown.sequence();
      const a = await s1.prefill(await once.embed(ids));
      const b = await s2.prefill(await grown.embed(ids)); // 200 rows, then 100 more: the capacity grows from 256
      expect(maxAbsDiff(b, a)).toBeLessThanOrEqual(1e-5);
      expect(s2.cacheBytes).toBe(s1.cacheBytes);
      expect(grown.cacheBytes).toBe(s2.cacheBytes);
      expect(maxAbsDiff(await s2.step(11), await s1.step(11))).toBeLessThanOrEqual(1e-5);
    } finally {
      await once.dispose();
      await grown.dispose();
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

describe('KV cache in place', () => {
  it.each(backends)('only the new rows are written into the shared past/present buffer, and nothing is copied back, on $label', async ({ backend, device, label }) => {
    const tiny = await tinyLlm({ seed: 23 });
    const c = tiny.config;
    const session = await backend.createSession(buildLlamaGraph(tiny.src, c, { maxPositions: 64, kvCache: 'shared' }).toBytes(), { device });
    const M = 32;
    const SENTINEL = 7;
    const dims = [1, c.numKvHeads, M, c.headDim];
    const buffers = Array.from({ length: c.numLayers }, () => ({ key: tensor('float32', dims, new Float32Array(numel(dims)).fill(SENTINEL)), value: tensor('float32', dims, new Float32Array(numel(dims)).fill(SENTINEL)) }));
    const feeds: Record<string, Tensor> = {};
    const fetches: Record<string, Tensor> = { [LLAMA_IO.logits]: tensor('float32', [1, c.vocabSize]) };
    buffers.forEach((b, l) => {
      feeds[LLAMA_IO.pastKey(l)] = fetches[LLAMA_IO.presentKey(l)] = b.key;
      feeds[LLAMA_IO.pastValue(l)] = fetches[LLAMA_IO.presentValue(l)] = b.value;
    });
    const storage = buffers.map((b) => [b.key.data, b.value.data]);
    // 5 cached positions (their rows hold the sentinel too), 3 new ones at positions 5..7.
    const S = 3;
    const out = await session.run(
      {
        ...feeds,
        [LLAMA_IO.inputsEmbeds]: tensor('float32', [1, S, c.hiddenSize], new Float32Array(S * c.hiddenSize).fill(0.1)),
        [LLAMA_IO.inputIds]: tensor('int64', [1, 0]),
        [LLAMA_IO.seqlensK]: tensor('int32', [1], Int32Array.of(7)),
        [LLAMA_IO.totalSequenceLength]: tensor('int32', [], Int32Array.of(8)),
      },
      fetches,
    );
    // The caller gets its own tensors back, with their own storage.
    buffers.forEach((b, l) => {
      expect(out[LLAMA_IO.presentKey(l)]).toBe(b.key);
      expect(out[LLAMA_IO.presentValue(l)]).toBe(b.value);
      expect([b.key.data, b.value.data]).toEqual(storage[l]);
      expect(b.key.data === storage[l][0] && b.value.data === storage[l][1]).toBe(true);
    });
    // Bytes JavaScript copied into the preallocated outputs: none where the runtime wrote them
    // (onnxruntime-node), every output where it ignores them (onnxruntime-web's WASM). A copy-back
    // on onnxruntime-node would show here.
    const all = Object.values(fetches).reduce((n, t) => n + t.data.byteLength, 0);
    expect(session.traffic.copiedBytes).toBe(label.startsWith('node') ? 0 : all);
    // Where the runtime makes its own present (WASM), it holds the past's rows and zeros after the new ones.
    const rows = label.startsWith('node') ? M : 8;
    for (const b of buffers) {
      for (const t of [b.key, b.value]) {
        for (let h = 0; h < c.numKvHeads; h++) {
          const row = (p: number) => Array.from(t.data.subarray((h * M + p) * c.headDim, (h * M + p + 1) * c.headDim) as Float32Array);
          for (let p = 0; p < rows; p++) {
            // Rows 5..7 are new; every other row, before and after, is untouched: no clearing.
            if (p >= 5 && p < 8) expect(row(p).some((v) => v !== SENTINEL)).toBe(true);
            else expect(row(p).every((v) => v === SENTINEL)).toBe(true);
          }
        }
      }
    }
    await session.dispose();
  });
});

describe("KV cache as an input only ('rows')", () => {
  it.each(backends)('a decode step is one run that moves the logits and the new rows, never the cache, on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 25, std: 0.1 });
    const c = tiny.config;
    const model = await openModel(tiny, backend, device);
    try {
      expect(model.kv.mode).toBe('rows');
      const seq = model.sequence();
      await seq.prefill(await model.embed(Array.from({ length: 200 }, (_, i) => (i * 31 + 3) % c.vocabSize)));
      const before = model.traffic;
      const runs = model.profile.runs;
      const STEPS = 4;
      for (let i = 0; i < STEPS; i++) await seq.step(5 + i);
      const after = model.traffic;
      expect(model.profile.runs - runs).toBe(STEPS); // the token embedding is inside the decoder
      const newRows = 2 * c.numLayers * c.numKvHeads * c.headDim * 4;
      const perStep = c.vocabSize * 4 + newRows;
      expect(after.fetchedBytes - before.fetchedBytes).toBe(STEPS * perStep);
      expect(after.copiedBytes - before.copiedBytes).toBe(0);
      // A copy of the cache would not fit in that count: the cache is much bigger than a step's bytes.
      expect(seq.cacheBytes).toBeGreaterThan(10 * perStep);
    } finally {
      await model.dispose();
    }
  });
});
