/**
 * The kernels onnxruntime offers for quantized weights over many rows (issue 25, item 3), on one
 * MLP's linears at the mid model's widths (1024 -> 2816 -> 1024, four times over, seeded weights):
 *
 *   npm run bench -- quant-prefill [--quick] [--record]
 *
 * Each variant: ms for a 512-row prompt chunk and for one decode row (alternating, medians), the
 * rate in GFLOP/s (or int8 GOP/s), and its error against float64 on two kinds of activations:
 * plain, and with four outlier features 100x the rest, as Llama models have (an outlier feature
 * stretches any scale shared across features). Variants: MatMulNBits at 8 and 4 bits, blocks of 32
 * to 128, accuracy levels 0 (float32 compute), 1 and 4 (int8 activations per block), and
 * DynamicQuantizeMatMul (int8 weights per output column, activations quantized to uint8 with one
 * scale per tensor).
 */
import { Graph, type InferenceSession, linear, type Tensor, tensor, type Value, type WeightFormat } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { seededFloats } from '@llava-mini/core/testing';
import { benchCommand, flag, fmt, LoadMeter, log, machine, median, now, RESULTS, replaceMarked, table } from './lib/common.js';

const QUICK = flag('quick');
const RUNS = QUICK ? 3 : 7;
const [H, I, REPS, S] = [1024, 2816, 4, 512];
const ERROR_ROWS = 16;

const weights = Array.from({ length: REPS }, (_, r) => ({ up: seededFloats(I * H, 2 * r + 1, 0.03), down: seededFloats(H * I, 2 * r + 2, 0.03) }));

/** y = x W^T with W [N, K] quantized to int8 per output column, through DynamicQuantizeMatMul. */
function dynamicInt8(g: Graph, x: Value, name: string, w: Float32Array, N: number, K: number): Value {
  const q = new Int8Array(K * N);
  const scales = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(w[n * K + k]));
    scales[n] = m / 127;
    for (let k = 0; k < K; k++) q[k * N + n] = Math.round(w[n * K + k] / scales[n]);
  }
  return g.op('DynamicQuantizeMatMul', [x, g.weight(`${name}.q`, tensor('int8', [K, N], q)), g.weight(`${name}.s`, tensor('float32', [N], scales))], {}, { domain: 'com.microsoft' });
}

type Variant = { label: string; format?: WeightFormat; dynamic?: true };
const nbits = (bits: 4 | 8, blockSize: number, accuracyLevel: 0 | 1 | 4): Variant => ({
  label: `MatMulNBits ${bits}-bit, blocks of ${blockSize}, accuracy ${accuracyLevel}`,
  format: { dtype: 'float32', quant: { bits, blockSize, accuracyLevel, symmetric: true } },
});
const VARIANTS: Variant[] = [
  { label: 'float32 MatMul', format: { dtype: 'float32' } },
  nbits(8, 32, 4),
  nbits(8, 128, 4),
  nbits(8, 32, 0),
  nbits(4, 32, 4),
  nbits(4, 64, 4),
  nbits(4, 128, 4),
  nbits(4, 32, 0),
  nbits(4, 32, 1),
  { label: 'DynamicQuantizeMatMul, int8 per column, uint8 activations per tensor', dynamic: true },
];

function graphOf(v: Variant): Uint8Array {
  const g = new Graph({ name: 'mlp' });
  let x = g.input('x', 'float32', [1, 'rows', H]);
  const lin = (name: string, w: Float32Array, N: number, K: number) => (v.dynamic ? dynamicInt8(g, x, name, w, N, K) : linear(g, x, name, tensor('float32', [N, K], w), undefined, v.format));
  weights.forEach((w, r) => {
    x = lin(`up${r}`, w.up, I, H);
    x = lin(`down${r}`, w.down, H, I);
  });
  g.output(x, 'y', 'float32');
  return g.toBytes();
}

/** The same chain in float64, for the errors. */
function exact(x: Float32Array, rows: number): Float64Array {
  let cur = Float64Array.from(x);
  for (const w of weights) {
    for (const [m, N, K] of [[w.up, I, H], [w.down, H, I]] as const) {
      const next = new Float64Array(rows * N);
      for (let s = 0; s < rows; s++) for (let n = 0; n < N; n++) {
        let a = 0;
        for (let k = 0; k < K; k++) a += cur[s * K + k] * m[n * K + k];
        next[s * N + n] = a;
      }
      cur = next;
    }
  }
  return cur;
}

/** Max |error| over max |exact|, in %. */
const relError = (got: Float32Array, want: Float64Array) => {
  let e = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return (100 * e) / m;
};

async function main(): Promise<void> {
  const meter = new LoadMeter();
  const backend = await nodeBackend();
  const prompt = tensor('float32', [1, S, H], seededFloats(S * H, 99, 0.5));
  const decode = tensor('float32', [1, 1, H], seededFloats(H, 98, 0.5));
  const plain = seededFloats(ERROR_ROWS * H, 97, 1);
  const outliers = plain.map((a, i) => (i % H < 4 ? 100 * a : a));
  const [plainExact, outlierExact] = [exact(plain, ERROR_ROWS), exact(outliers, ERROR_ROWS)];
  const sessions: InferenceSession[] = [];
  for (const v of VARIANTS) sessions.push(await backend.createSession(graphOf(v), { device: 'cpu' }));
  const times = VARIANTS.map(() => ({ prompt: [] as number[], decode: [] as number[] }));
  for (let r = 0; r <= RUNS; r++) {
    log(`round ${r}/${RUNS}`);
    for (const [i, s] of sessions.entries()) {
      for (const [key, x] of [['prompt', prompt], ['decode', decode]] as const) {
        const t = now();
        await s.run({ x });
        if (r > 0) times[i][key].push(now() - t);
      }
    }
  }
  const flops = (rows: number) => 2 * rows * 2 * H * I * REPS;
  const base = median(times[0].prompt);
  const rows: (string | number)[][] = [];
  for (const [i, v] of VARIANTS.entries()) {
    const run = async (x: Float32Array) => (await sessions[i].run({ x: tensor('float32', [1, ERROR_ROWS, H], x) as Tensor })).y.data as Float32Array;
    const [p, d] = [median(times[i].prompt), median(times[i].decode)];
    rows.push([v.label, fmt(p, 1), fmt(flops(S) / p / 1e6, 0), `${fmt(base / p, 2)}x`, fmt(d, 2), fmt(relError(await run(plain), plainExact), 2), fmt(relError(await run(outliers), outlierExact), 2)]);
  }
  for (const s of sessions) await s.dispose();
  const lines = [
    `### Quantized prefill: the kernels onnxruntime offers (issue 25)`,
    '',
    `Command: \`${benchCommand('quant-prefill')}\`, ${new Date().toISOString().slice(0, 16)} UTC. Machine: ${machine()}; ${meter.report()}.`,
    '',
    `Four times one MLP's linears at the mid model's widths (${H} -> ${I} -> ${H}), seeded weights, onnxruntime-node CPU; a ${S}-row prompt chunk and one decode row, medians of ${RUNS} alternating rounds; errors on ${ERROR_ROWS} rows against float64 (max |error| / max |exact|), plain activations and with 4 of ${H} features 100x the others.`,
    '',
    table(['kernel', `${S} rows ms`, 'GFLOP/s (int8: GOP/s)', 'vs float32', '1 row ms', 'error %, plain', 'error %, outlier features'], rows, [false, true, true, true, true, true, true]),
  ];
  console.log(lines.join('\n'));
  if (flag('record')) replaceMarked(RESULTS, 'quant-prefill', lines.join('\n'));
}

await main();
