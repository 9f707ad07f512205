import { describe, expect, it } from 'vitest';
import { dequantizeBlockwise, quantizeBlockwise, type Tensor, tensor, type WeightSource } from '@llava-mini/core';
import { maxAbsDiff, testBackends } from '@llava-mini/core/testing';
import { RefLlama, refLlamaConfig } from '@llava-mini/reference';
import type { BlockQuant, LlamaGraphOptions } from '../src/index.js';
import { openModel, tinyLlm, type TinyLlm } from './helpers.js';

const backends = await testBackends();
const TINY = { seed: 31, hiddenSize: 128, intermediateSize: 256, numAttentionHeads: 8, numKeyValueHeads: 2 } as const;
const prompt = Array.from({ length: 16 }, (_, i) => (i * 37 + 3) % 500);
const steps = [5, 9];

/** The checkpoint as the quantized graph sees it: every 2-D weight replaced by its dequantized blocks. */
function dequantized(src: WeightSource, q: BlockQuant): WeightSource {
  const cache = new Map<string, Tensor>();
  return {
    has: (n) => src.has(n),
    read: (n) => {
      const t = src.read(n);
      if (t.dims.length !== 2) return t;
      let d = cache.get(n);
      if (!d) {
        const [N, K] = t.dims;
        const w = (src as TinyLlm['src']).float32(n);
        d = tensor('float32', [N, K], dequantizeBlockwise(quantizeBlockwise(w, N, K, q)));
        cache.set(n, d);
      }
      return d;
    },
  };
}

async function logitsOf(tiny: TinyLlm, backend: Parameters<typeof openModel>[1], device: Parameters<typeof openModel>[2], graph: LlamaGraphOptions = {}): Promise<Float32Array[]> {
  const model = await openModel(tiny, backend, device, graph);
  try {
    const seq = model.sequence();
    const out = [await seq.prefill(await model.embed(prompt))];
    for (const id of steps) out.push(await seq.step(id));
    return out;
  } finally {
    await model.dispose();
  }
}

const relErr = (got: Float32Array[], ref: Float32Array[]): number =>
  Math.max(...got.map((g, i) => maxAbsDiff(g, ref[i]))) / Math.max(...ref.map((r) => Math.max(...r.map(Math.abs))));

describe.each([8, 4] as const)('%i-bit weights (MatMulNBits layers and lm_head, GatherBlockQuantized embeddings)', (bits) => {
  const quant = { bits, blockSize: 32 };

  it.each(backends)('compute exactly what the quantized weights say on $label (reference on dequantized weights, 1e-4)', async ({ backend, device }) => {
    const tiny = await tinyLlm(TINY);
    const ref = new RefLlama(dequantized(tiny.src, quant), refLlamaConfig(tiny.json));
    const expected = [ref.step(ref.embed(prompt)), ...steps.map((id) => ref.step(ref.embed([id])))];
    const got = await logitsOf(tiny, backend, device, { format: { dtype: 'float32', quant } });
    got.forEach((g, i) => expect(maxAbsDiff(g, expected[i])).toBeLessThanOrEqual(1e-4));
  });

  // Measured over 5 seeds of this config (std 0.02, 16-token prompt + 2 steps): 8-bit 0.8-1.5 %
  // (int8 activations, accuracy level 4: 1.0-1.5 %), 4-bit 13-25 % of the largest |logit|. Random
  // Gaussian weights are a worst case for 4-bit min/max blocks; trained checkpoints lose less.
  const bound = bits === 8 ? 0.03 : 0.3;
  it.each(backends)(`stay within ${bound * 100} % (max |error| / max |logit|) of the fp32 logits on $label`, async ({ backend, device }) => {
    const tiny = await tinyLlm(TINY);
    const fp32 = await logitsOf(tiny, backend, device);
    const err = relErr(await logitsOf(tiny, backend, device, { format: { dtype: 'float32', quant } }), fp32);
    expect(err).toBeLessThanOrEqual(bound);
    expect(err).toBeGreaterThan(0); // the weights really are quantized
    // int8 activations (the fast CPU path) and fp16 activations over the same weights.
    const int8 = relErr(await logitsOf(tiny, backend, device, { format: { dtype: 'float32', quant: { ...quant, accuracyLevel: 4 } } }), fp32);
    expect(int8).toBeLessThanOrEqual(bound);
    const err16 = relErr(await logitsOf(tiny, backend, device, { format: { dtype: 'float16', quant } }), fp32);
    expect(err16).toBeLessThanOrEqual(bound + 0.01);
  });
});

describe('float16', () => {
  it.each(backends)('fp16 weights and I/O stay within 0.5 % of the fp32 logits on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm(TINY);
    const fp32 = await logitsOf(tiny, backend, device);
    const model = await openModel(tiny, backend, device, { format: { dtype: 'float16' } });
    try {
      const embeds = await model.embed(prompt);
      expect(embeds.dtype).toBe('float16');
      const seq = model.sequence();
      const got = [await seq.prefill(embeds), await seq.step(steps[0]), await seq.step(steps[1])];
      expect(relErr(got, fp32)).toBeLessThanOrEqual(0.005); // measured 0.08-0.09 %
    } finally {
      await model.dispose();
    }
  });

  it.each(backends)('a float model can keep quantized embeddings and lm_head (the browser layout) on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm(TINY);
    const fp32 = await logitsOf(tiny, backend, device);
    const quant = { bits: 8, blockSize: 32 } as const;
    const got = await logitsOf(tiny, backend, device, { format: { dtype: 'float16' }, embeddingQuant: quant, headQuant: quant });
    expect(relErr(got, fp32)).toBeLessThanOrEqual(0.03);
  });
});

describe('quantized embeddings', () => {
  it.each(backends)('rows come back dequantized, also when blocks overhang the width, on $label', async ({ backend, device }) => {
    const tiny = await tinyLlm({ seed: 32 }); // width 64
    const H = tiny.config.hiddenSize;
    for (const q of [{ bits: 4, blockSize: 32 }, { bits: 8, blockSize: 128 }] as const) {
      const model = await openModel(tiny, backend, device, { embeddingQuant: q });
      try {
        const ids = [0, 17, tiny.config.vocabSize - 1];
        const e = (await model.embed(ids)).data as Float32Array;
        expect(e.length).toBe(ids.length * H);
        const table = tiny.src.float32('model.embed_tokens.weight');
        const deq = dequantizeBlockwise(quantizeBlockwise(table, tiny.config.vocabSize, H, q));
        ids.forEach((id, s) => expect(maxAbsDiff(e.subarray(s * H, (s + 1) * H), deq.subarray(id * H, (id + 1) * H))).toBeLessThanOrEqual(1e-7));
        expect(maxAbsDiff(e.subarray(H, 2 * H), table.subarray(17 * H, 18 * H))).toBeGreaterThan(0);
      } finally {
        await model.dispose();
      }
    }
  });
});
