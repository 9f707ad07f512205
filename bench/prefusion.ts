/**
 * Pre-fusion stage benchmark (issue 10), onnxruntime-node CPU, at the headline's large backbone
 * (width 1024, GQA 16/4 heads of 64, MLP 2816, 2 pre-fusion layers), 576 image rows + 1 compressed
 * row + an 86-token prompt:
 *
 *   npm run bench -- prefusion              9 alternating runs per variant
 *   npm run bench -- prefusion --quick      5 runs
 *   options: --record (write bench/RESULTS.md's "Pre-fusion stage")
 *
 * 1. Attention op alone (one layer's q, k, v of T = 663 rows), the three causal paths onnxruntime
 *    has: MultiHeadAttention with a T x T additive mask and kv heads repeated (what pre-fusion ran
 *    before), the opset-23 Attention op with is_causal and grouped kv heads, GroupQueryAttention
 *    (causal in the kernel, with and without its built-in rotary embedding).
 * 2. The whole pre-fusion graph: a first look at a picture against a prompt over its cached prefix.
 * Variants alternate within each run so machine noise hits them alike; medians and ratios.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Graph, type InferenceSession, type Tensor, tensor, type Value } from '@llava-mini/core';
import { Checkpoint, nodeBackend } from '@llava-mini/core/node';
import { seededFloats } from '@llava-mini/core/testing';
import { buildPrefusionGraph, type PicturePrefix, Prefusion, readPrefusionConfig } from '@llava-mini/prefusion';
import { cachedFloat32 } from '@llava-mini/reference';
import { benchCommand, CACHE, flag, fmt, LoadMeter, log, machine, median, now, RESULTS, replaceMarked, table } from './lib/common.js';
import { causalPairs, llamaBlocks, projector } from './lib/flops.js';
import { PREFUSION, seededCheckpoint } from './lib/shapes.js';

const RUNS = flag('quick') ? 5 : 9;
const DIR = path.join(CACHE, 'prefusion');
const M = 576;
const L = 86;
const T = M + 1 + L;

/** Runs each variant once per round, in turn, after one warm-up round; returns medians in ms. */
async function alternate(variants: Record<string, () => Promise<unknown>>): Promise<Record<string, number>> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 0; r <= RUNS; r++) {
    for (const [name, run] of Object.entries(variants)) {
      const t = now();
      await run();
      if (r > 0) times[name].push(now() - t);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
}

async function attentionOps(): Promise<string> {
  const backend = await nodeBackend();
  const [Hq, Hkv, d] = [PREFUSION.numAttentionHeads, PREFUSION.numKeyValueHeads, PREFUSION.hiddenSize / PREFUSION.numAttentionHeads];
  const feeds: Record<string, Tensor> = {
    q: tensor('float32', [1, T, Hq * d], seededFloats(T * Hq * d, 1, 1)),
    k: tensor('float32', [1, T, Hkv * d], seededFloats(T * Hkv * d, 2, 1)),
    v: tensor('float32', [1, T, Hkv * d], seededFloats(T * Hkv * d, 3, 1)),
  };
  const graph = (opset: number, body: (g: Graph, q: Value, k: Value, v: Value) => Value) => {
    const g = new Graph({ opset });
    const [q, k, v] = [g.input('q', 'float32', [1, T, Hq * d]), g.input('k', 'float32', [1, T, Hkv * d]), g.input('v', 'float32', [1, T, Hkv * d])];
    g.output(body(g, q, k, v), 'out', 'float32');
    return g.toBytes();
  };
  const gqa = (rotary: boolean) =>
    graph(21, (g, q, k, v) => {
      const table = (s: number) => g.weight(`rope${s}`, tensor('float32', [1024, d / 2], seededFloats(1024 * (d / 2), s, 1)));
      const lengths = { seqlensK: g.constant(tensor('int32', [1], Int32Array.of(T - 1))), totalSequenceLength: g.int32(T) };
      const rope = rotary ? { cosCache: table(4), sinCache: table(5) } : {};
      return g.groupQueryAttention({ query: q, key: k, value: v, ...lengths, ...rope }, { numHeads: Hq, kvNumHeads: Hkv })[0];
    });
  const bias = new Float32Array(T * T).fill(-3.4028234663852886e38);
  for (let i = 0; i < T; i++) bias.fill(0, i * T, i * T + i + 1);
  const graphs: Record<string, { bytes: Uint8Array; extra?: Record<string, Tensor> }> = {
    'MultiHeadAttention, T x T mask, kv heads repeated (before)': {
      bytes: graph(21, (g, q, k, v) => {
        const mask = g.input('mask', 'float32', [1, 1, T, T]);
        const repeat = (x: Value) => g.reshape(g.expand(g.reshape(x, [0, 0, Hkv, 1, d]), g.int64s([1, 1, 1, Hq / Hkv, 1])), [0, 0, Hq * d]);
        return g.multiHeadAttention(q, repeat(k), repeat(v), { numHeads: Hq, attentionBias: mask });
      }),
      extra: { mask: tensor('float32', [1, 1, T, T], bias) },
    },
    'Attention (opset 23), is_causal, grouped kv heads': { bytes: graph(23, (g, q, k, v) => g.op('Attention', [q, k, v], { is_causal: 1, q_num_heads: Hq, kv_num_heads: Hkv })) },
    'GroupQueryAttention, causal, no rotary': { bytes: gqa(false) },
    'GroupQueryAttention, causal, rotary inside (used)': { bytes: gqa(true) },
  };
  const sessions: Record<string, InferenceSession> = {};
  for (const [name, { bytes }] of Object.entries(graphs)) sessions[name] = await backend.createSession(bytes, { device: 'cpu' });
  const ms = await alternate(Object.fromEntries(Object.entries(graphs).map(([name, { extra }]) => [name, () => sessions[name].run({ ...feeds, ...extra }, ['out'])])));
  for (const s of Object.values(sessions)) await s.dispose();
  const base = ms[Object.keys(graphs)[0]];
  const gflop = (4 * causalPairs(T) * Hq * d) / 1e9;
  return table(
    ['attention op (one layer, T = 663, 16/4 heads of 64)', 'ms (median)', 'speedup over before', 'GFLOP/s (causal pairs)'],
    Object.entries(ms).map(([name, t]) => [name, fmt(t), `${fmt(base / t, 2)}x`, fmt(gflop / (t / 1e3), 1)]),
  );
}

async function wholeGraph(): Promise<string> {
  const dir = await seededCheckpoint(path.join(DIR, 'large'), PREFUSION);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const src = cachedFloat32(Checkpoint.open(dir));
  const [D, H] = [json.mm_hidden_size as number, json.hidden_size as number];
  const config = readPrefusionConfig(json);
  const prefusion = await Prefusion.create(await nodeBackend(), buildPrefusionGraph(src, config, { compressedTokens: 1, maxPositions: 1024 }).toBytes(), { device: 'cpu', config, maxPositions: 1024 });
  const ids = [128000, 128000, ...Array.from({ length: 40 }, (_, i) => 10 + i), -200, ...Array.from({ length: L - 43 }, (_, i) => 60 + i)];
  const image = { imageFeatures: seededFloats(M * D, 1, 1), compressed: seededFloats(D, 2, 1) };
  const text = { textEmbeds: seededFloats(L * H, 3, 0.1), ids };
  let prefix: PicturePrefix | undefined;
  await prefusion.run({ ...image, ...text }, { onPrefix: (p) => (prefix = p) });
  const warm = prefix as PicturePrefix;
  const ms = await alternate({ first: () => prefusion.run({ ...image, ...text }), cached: () => prefusion.run({ ...warm, ...text }) });
  await prefusion.dispose();
  const c = { hidden: H, intermediate: PREFUSION.intermediateSize, layers: 1, heads: PREFUSION.numAttentionHeads, kvHeads: PREFUSION.numKeyValueHeads, headDim: H / PREFUSION.numAttentionHeads, vocab: 0 };
  const kept = L - 1;
  const firstFlops = projector(M + 1, D, H) + llamaBlocks(c, T - 1, PREFUSION.prefusionLayers);
  const cachedFlops = llamaBlocks(c, kept, PREFUSION.prefusionLayers, M + 1);
  return table(
    ['pre-fusion pass (2 layers, 577 picture rows, 85 kept prompt rows)', 'ms (median)', 'GFLOP', 'GFLOP/s'],
    [
      ['first look at the picture (picture + prompt rows)', fmt(ms.first), fmt(firstFlops / 1e9, 2), fmt(firstFlops / 1e6 / ms.first, 1)],
      [`prompt over the cached prefix (${fmt(warm.bytes / 1e6, 1)} MB held)`, fmt(ms.cached), fmt(cachedFlops / 1e9, 2), fmt(cachedFlops / 1e6 / ms.cached, 1)],
      ['ratio first / cached', `${fmt(ms.first / ms.cached, 2)}x`, `${fmt(firstFlops / cachedFlops, 2)}x`, ''],
    ],
  );
}

const meter = new LoadMeter();
log('pre-fusion bench: attention ops...');
const ops = await attentionOps();
log('pre-fusion bench: whole graph...');
const whole = await wholeGraph();
const load = meter.report();
const md = [
  '## Pre-fusion stage',
  '',
  `<sub>Run: \`${benchCommand('prefusion')}\`, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${machine()}; medians of ${RUNS} alternating runs after one warm-up; ${load}.</sub>`,
  '',
  ops,
  '',
  whole,
].join('\n');
console.log(md);
if (flag('record')) replaceMarked(RESULTS, 'prefusion-stage', md);
