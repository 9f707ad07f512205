import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeModel, Graph, GraphError, quantizeBlockwise, dequantizeBlockwise, tensor, type Tensor, type Value } from '../src/index.js';
import { ExternalDataWriter, saveModel } from '../src/node.js';
import { backends, f32, maxAbsDiff, seededFloats } from './helpers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-graph-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const f = (dims: number[], seed: number, scale = 1) => tensor('float32', dims, seededFloats(dims.reduce((a, b) => a * b, 1), seed, scale));

/** Build a one-output graph over float32 inputs, run it on both backends, and return both results. */
async function runBoth(inputs: Record<string, Tensor>, body: (g: Graph, x: Record<string, Value>) => Value, opset = 21) {
  const g = new Graph({ opset });
  const vals: Record<string, Value> = {};
  for (const [name, t] of Object.entries(inputs)) vals[name] = g.input(name, t.dtype, [...t.dims]);
  g.output(body(g, vals), 'y', 'float32');
  const bytes = g.toBytes();
  const results: Float32Array[] = [];
  for (const { backend, device } of await backends()) {
    const s = await backend.createSession(bytes, { device });
    results.push(f32((await s.run(inputs)).y));
    await s.dispose();
  }
  expect(maxAbsDiff(results[0], results[1])).toBeLessThanOrEqual(1e-5);
  return results[0];
}

describe('graph builder: the same graph gives the same result on node CPU and web WASM', () => {
  it('LayerNorm + MatMul + bias + exact GELU matches a plain computation', async () => {
    const x = f([3, 8], 1);
    const w = f([8, 5], 2);
    const y = await runBoth({ x }, (g, v) => {
      const h = g.layerNorm(v.x, g.weight('ln.w', f([8], 3)), g.weight('ln.b', f([8], 4)), 1e-5);
      return g.gelu(g.add(g.matMul(h, g.weight('w', w)), g.weight('b', f([5], 5))));
    });
    const lnw = f([8], 3).data;
    const lnb = f([8], 4).data;
    const b = f([5], 5).data;
    const expected = new Float32Array(15);
    for (let r = 0; r < 3; r++) {
      const row = x.data.subarray(r * 8, r * 8 + 8);
      const mean = row.reduce((a, c) => a + c, 0) / 8;
      const variance = row.reduce((a, c) => a + (c - mean) ** 2, 0) / 8;
      const h = Array.from(row, (c, i) => ((c - mean) / Math.sqrt(variance + 1e-5)) * lnw[i] + lnb[i]);
      for (let c = 0; c < 5; c++) {
        let acc = b[c];
        for (let i = 0; i < 8; i++) acc += h[i] * w.data[i * 5 + c];
        expected[r * 5 + c] = 0.5 * acc * (1 + erf(acc / Math.SQRT2));
      }
    }
    expect(maxAbsDiff(y, expected)).toBeLessThan(1e-5);
  });

  it('contrib: QuickGelu, SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization', async () => {
    const x = f([2, 3, 16], 7);
    const s = f([2, 3, 16], 8);
    const scale = f([16], 9);
    const y = await runBoth({ x, s }, (g, v) => {
      const [normed, sum] = g.skipSimplifiedLayerNorm(v.x, v.s, g.weight('g1', scale), 1e-5);
      return g.add(g.quickGelu(normed), g.simplifiedLayerNorm(sum, g.weight('g2', scale), 1e-5));
    });
    const expected = new Float32Array(x.data.length);
    for (let r = 0; r < 6; r++) {
      const sum = Array.from({ length: 16 }, (_, i) => x.data[r * 16 + i] + s.data[r * 16 + i]);
      const rms = Math.sqrt(sum.reduce((a, c) => a + c * c, 0) / 16 + 1e-5);
      for (let i = 0; i < 16; i++) {
        const n = (sum[i] / rms) * scale.data[i];
        expected[r * 16 + i] = n / (1 + Math.exp(-1.702 * n)) + n;
      }
    }
    expect(maxAbsDiff(y, expected)).toBeLessThan(1e-5);
  });

  it('contrib: MultiHeadAttention with an additive mask, RotaryEmbedding, GroupQueryAttention', async () => {
    const B = 1, S = 5, heads = 2, kvHeads = 1, hd = 16;
    const q = f([B, S, heads * hd], 11);
    const k = f([B, S, kvHeads * hd], 12);
    const v = f([B, S, kvHeads * hd], 13);
    const maskData = new Float32Array(S * S).map((_, i) => (i % S > Math.floor(i / S) ? -1e9 : 0));
    const cos = f([16, hd / 2], 14);
    const sin = f([16, hd / 2], 15);
    await runBoth({ q, k, v }, (g, x) => {
      const kFull = g.concat([x.k, x.k], -1);
      const vFull = g.concat([x.v, x.v], -1);
      const mask = g.floats([1, 1, S, S], maskData);
      const mha = g.multiHeadAttention(x.q, kFull, vFull, { numHeads: heads, attentionBias: mask });
      const pos = g.constant(tensor('int64', [B, S], BigInt64Array.from({ length: S }, (_, i) => BigInt(i + 2))));
      const rot = g.rotaryEmbedding(x.q, pos, g.weight('cos', cos), g.weight('sin', sin), { numHeads: heads });
      const seqlens = g.constant(tensor('int32', [B], Int32Array.of(S - 1)));
      const [gqa] = g.groupQueryAttention(
        { query: x.q, key: x.k, value: x.v, seqlensK: seqlens, totalSequenceLength: g.int32(S), cosCache: g.weight('cos2', cos), sinCache: g.weight('sin2', sin) },
        { numHeads: heads, kvNumHeads: kvHeads },
      );
      return g.add(g.add(mha, rot), gqa);
    });
  });

  it('contrib: MatMulNBits at 4 and 8 bits equals a matmul with the dequantized weight', async () => {
    const K = 64, N = 24;
    const a = f([3, K], 21);
    const w = seededFloats(N * K, 22, 0.5);
    for (const bits of [4, 8] as const) {
      const q = quantizeBlockwise(w, N, K, { bits, blockSize: 32 });
      const nb = K / 32;
      const y = await runBoth({ a }, (g, x) =>
        g.matMulNBits(
          x.a,
          g.weight('B', tensor('uint8', [N, nb, (32 * bits) / 8], q.data)),
          g.weight('scales', tensor('float32', [N * nb], q.scales)),
          g.weight('zp', tensor('uint8', [q.zeroPoints.length], q.zeroPoints)),
          { K, N, bits, blockSize: 32 },
        ),
      );
      const deq = dequantizeBlockwise(q);
      const expected = new Float32Array(3 * N);
      for (let r = 0; r < 3; r++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) expected[r * N + n] += a.data[r * K + k] * deq[n * K + k];
      expect(maxAbsDiff(y, expected)).toBeLessThan(1e-4);
    }
  });

  it('shape ops and opset-23 RMSNormalization', async () => {
    const x = f([2, 6], 31);
    await runBoth(
      { x },
      (g, v) => {
        const t = g.transpose(g.reshape(v.x, [2, 3, 2]), [0, 2, 1]);
        const s = g.slice(t, [0], [1], [1]);
        const idx = g.constant(tensor('int64', [2], BigInt64Array.of(1n, 0n)));
        const r = g.op('RMSNormalization', [g.gather(v.x, idx), g.weight('rs', f([6], 32))], { epsilon: 1e-5 } as never);
        return g.concat([g.reshape(s, [2, 3]), g.softmax(r)], 1);
      },
      23,
    );
  });

  it('If: each branch reads the outer values and its own constants, and only the chosen one gives the result', async () => {
    const x = f([2, 3], 33);
    const flag = (on: boolean) => tensor('bool', [], Uint8Array.of(on ? 1 : 0));
    const run = (cond: Tensor) =>
      runBoth({ x, cond } as Record<string, Tensor>, (g, v) => {
        const doubled = g.add(v.x, v.x); // computed outside, read inside
        const [y] = g.ifElse(
          v.cond,
          ['float32'],
          (b) => [b.mul(doubled, b.float(3))],
          (b) => [b.sigmoid(b.slice(doubled, [0], [1], [0]))], // another shape: branches may differ
        );
        return y;
      });
    expect(maxAbsDiff(await run(flag(true)), x.data.map((a) => 6 * a))).toBeLessThan(1e-6);
    expect(maxAbsDiff(await run(flag(false)), x.data.subarray(0, 3).map((a) => 1 / (1 + Math.exp(-2 * a))))).toBeLessThan(1e-6);
  });
});

describe('graph builder: structure and errors', () => {
  it('writes named, typed inputs and outputs and the contrib opset', () => {
    const g = new Graph();
    const x = g.input('pixels', 'float32', ['batch', 3]);
    g.output(g.quickGelu(x), 'features', 'float32', ['batch', 3]);
    const m = decodeModel(g.toBytes());
    expect(m.graph.input[0].name).toBe('pixels');
    expect(m.graph.output[0].name).toBe('features');
    expect(m.opset_import.map((o) => o.domain).sort()).toEqual(['', 'com.microsoft']);
  });
  it('refuses values from another graph, duplicate names and graphs without outputs', () => {
    const a = new Graph();
    const b = new Graph();
    const x = a.input('x', 'float32', [1]);
    expect(() => b.sigmoid(x)).toThrow(GraphError);
    expect(() => a.input('x', 'float32', [1])).toThrow(/already used/);
    expect(() => b.toBytes()).toThrow(/no outputs/);
  });
  it('keeps a branch to its own and its outer graphs: a sibling branch\'s value is refused, names stay unique across both', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [1]);
    let leaked: Value | undefined;
    g.ifElse(
      g.input('c', 'bool', []),
      ['float32'],
      (b) => [(leaked = b.neg(x, { name: 'inner' }))],
      (b) => {
        expect(() => b.sigmoid(leaked as Value)).toThrow(GraphError);
        expect(() => b.neg(x, { name: 'inner' })).toThrow(/already used/);
        return [x];
      },
    );
    expect(() => g.sigmoid(leaked as Value)).toThrow(GraphError);
  });
});

describe('external data', () => {
  it('loads on both backends from a path, with the weights beside the model', async () => {
    const modelPath = path.join(dir, 'ext.onnx');
    const writer = new ExternalDataWriter(modelPath, 0);
    const g = new Graph({ weights: writer });
    const x = g.input('x', 'float32', [2, 4]);
    const w = f([4, 3], 41);
    g.output(g.matMul(x, g.weight('w', w)), 'y', 'float32');
    saveModel(g, modelPath, writer);
    expect(fs.statSync(`${modelPath}.data`).size).toBe(48);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const xs = f([2, 4], 42);
    const outs: Float32Array[] = [];
    for (const { backend, device } of await backends()) {
      const s = await backend.createSession(modelPath, { device });
      outs.push(f32((await s.run({ x: xs })).y));
      await s.dispose();
    }
    expect(maxAbsDiff(outs[0], outs[1])).toBeLessThanOrEqual(1e-6);
  });

  it('writes a model whose weights exceed 2 GB (protobuf limit) and loads it', async () => {
    const modelPath = path.join(dir, 'big.onnx');
    const writer = new ExternalDataWriter(modelPath);
    const g = new Graph({ weights: writer });
    const idx = g.input('idx', 'int64', [1]);
    // Three 768 MB tables; only the last row of the last one is read back.
    const rows = 3 * 2 ** 16;
    const table = new Float32Array(rows * 1024);
    let out: Value | undefined;
    for (let i = 0; i < 3; i++) {
      table[table.length - 1] = i + 1;
      const row = g.gather(g.weight(`table${i}`, tensor('float32', [rows, 1024], table)), idx);
      out = out ? g.add(out, row) : row;
    }
    g.output(out as Value, 'y', 'float32');
    saveModel(g, modelPath, writer);
    expect(fs.statSync(`${modelPath}.data`).size).toBeGreaterThan(2 ** 31);
    expect(fs.statSync(modelPath).size).toBeLessThan(4096);
    const { backend } = (await backends())[0];
    const s = await backend.createSession(modelPath, { device: 'cpu' });
    const y = f32((await s.run({ idx: tensor('int64', [1], BigInt64Array.of(BigInt(rows - 1))) })).y);
    expect(y[1023]).toBe(6);
    await s.dispose();
    fs.rmSync(`${modelPath}.data`);
  });
});

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is only 1e-7 accurate; use a series/continued fraction accurate to 1e-15.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t, term = t;
    for (let n = 1; n < 100; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  return Math.sign(x) * (1 - Math.exp(-t * t) / (t * Math.sqrt(Math.PI)));
}
