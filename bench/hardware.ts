/**
 * Table 3, the hardware limit: this machine's memory bandwidth (JavaScript over a large Float64Array,
 * and onnxruntime's ReduceSum over a large tensor) and onnxruntime's peak fp32 MatMul FLOP/s (node
 * CPU and web WASM); then the LLM stage's decode tokens/s for fp32, 8-bit and 4-bit weights as a
 * fraction of the bandwidth bound (weight bytes read per token), and prefill as a fraction of peak.
 * Decode/prefill are measured here with generate() on the graphs the LLM stage bench built (its cache);
 * without them, the "LLM stage" section of RESULTS.md (or a quick run of that bench) is used.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Backend, Graph, tensor } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { webBackend } from '@llava-mini/core/web';
import { CACHE, fmt, log, median, now, promptIds, RESULTS, ROOT, table } from './lib/common.js';
import { causalPairs, type LlmShape } from './lib/flops.js';
import { generate, LlamaModel, llamaModelPaths, loadTokenizer, readLlamaConfig } from '@llava-mini/llm/node';
import { refLlamaConfig } from '@llava-mini/reference';
import { barChart, savePng } from './lib/plot.js';

/** Best-of-n read and copy bandwidth of plain JavaScript over `bytes` of Float64Array. */
function jsBandwidth(bytes: number, reps: number): { read: number; copy: number } {
  const a = new Float64Array(bytes / 8);
  for (let i = 0; i < a.length; i += 512) a[i] = i; // touch every page
  const b = new Float64Array(a.length);
  b.set(a);
  let read = 0;
  let copy = 0;
  let sink = 0;
  for (let r = 0; r < reps; r++) {
    let t = now();
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < a.length; i += 4) {
      s0 += a[i];
      s1 += a[i + 1];
      s2 += a[i + 2];
      s3 += a[i + 3];
    }
    sink += s0 + s1 + s2 + s3;
    read = Math.max(read, bytes / ((now() - t) / 1000));
    t = now();
    b.set(a);
    copy = Math.max(copy, (2 * bytes) / ((now() - t) / 1000)); // read + write
  }
  if (sink === 42) log('');
  return { read, copy };
}

/** onnxruntime ReduceSum over an fp32 vector of `bytes`: bytes read per second (best of n). */
async function ortBandwidth(backend: Backend, device: 'cpu' | 'wasm', bytes: number, reps: number): Promise<number> {
  const g = new Graph({ name: 'reduce' });
  const x = g.input('x', 'float32', ['n']);
  g.output(g.op('ReduceSum', [x], { keepdims: 0 }), 'y', 'float32', []);
  const s = await backend.createSession(g.toBytes(), { device });
  const data = new Float32Array(bytes / 4).fill(1);
  let best = 0;
  try {
    for (let r = 0; r < reps + 1; r++) {
      const t = now();
      await s.run({ x: tensor('float32', [data.length], data) }, ['y']);
      if (r > 0) best = Math.max(best, bytes / ((now() - t) / 1000));
    }
  } finally {
    await s.dispose();
  }
  return best;
}

/**
 * The runtime's own streaming rate: a [1, K] x [K, N] fp32 MatMul (what a decode step does) over a
 * weight of `bytes`, all threads; bytes of weight read per second (best of `reps`).
 */
export async function gemvBandwidth(backend: Backend, bytes: number, reps: number): Promise<number> {
  const K = 8192;
  const N = bytes / 4 / K;
  const g = new Graph({ name: 'gemv' });
  const x = g.input('x', 'float32', [1, K]);
  const w = new Float32Array(K * N);
  for (let i = 0; i < w.length; i += 97) w[i] = 0.001 * (i % 13);
  g.output(g.matMul(x, g.weight('w', tensor('float32', [K, N], w))), 'y', 'float32', [1, N]);
  const s = await backend.createSession(g.toBytes(), { device: 'cpu' });
  const feed = tensor('float32', [1, K], new Float32Array(K).fill(1));
  let best = 0;
  try {
    for (let r = 0; r < reps + 1; r++) {
      const t = now();
      await s.run({ x: feed }, ['y']);
      if (r > 0) best = Math.max(best, bytes / ((now() - t) / 1000));
    }
  } finally {
    await s.dispose();
  }
  return best;
}

/** fp32 MatMul [m, k] x [k, n] (weights as an initializer, as in the model graphs): FLOP/s, median of `reps`. */
export async function matmulRate(backend: Backend, device: 'cpu' | 'wasm', [m, k, n]: number[], reps: number): Promise<number> {
  const g = new Graph({ name: 'matmul' });
  const a = g.input('a', 'float32', [m, k]);
  const w = new Float32Array(k * n);
  for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  g.output(g.matMul(a, g.weight('w', tensor('float32', [k, n], w))), 'y', 'float32', [m, n]);
  const s = await backend.createSession(g.toBytes(), { device });
  const x = tensor('float32', [m, k], w.slice(0, m * k).length === m * k ? w.slice(0, m * k) : new Float32Array(m * k).fill(0.5));
  const times: number[] = [];
  try {
    await s.run({ a: x }, ['y']);
    for (let r = 0; r < reps; r++) {
      const t = now();
      await s.run({ a: x }, ['y']);
      times.push((now() - t) / 1000);
    }
  } finally {
    await s.dispose();
  }
  return (2 * m * k * n) / median(times);
}

/** The best rate over square and LLM-shaped (prompt rows x width x MLP width) products. */
async function matmulPeak(backend: Backend, device: 'cpu' | 'wasm', shapes: number[][], reps: number): Promise<{ rate: number; shape: string }> {
  let best = { rate: 0, shape: '' };
  for (const shape of shapes) {
    const rate = await matmulRate(backend, device, shape, reps);
    if (rate > best.rate) best = { rate, shape: shape.join('x') };
  }
  return best;
}

interface LlmRow {
  format: string;
  prefill: number;
  decode: number;
}

/**
 * Decode and prefill tokens/s of the LLM stage's model (node CPU, generate()), measured here on the
 * graphs the LLM stage bench built under .cache/bench/llm, so the rates sit beside the limits
 * measured in the same run. Formats whose graphs are missing are left out.
 */
async function measureLlmStage(quick: boolean): Promise<{ rows: LlmRow[]; prompt: number; source: string }> {
  const dir = path.join(CACHE, 'llm');
  const ck = path.join(dir, 'mid-checkpoint');
  if (!fs.existsSync(path.join(ck, 'config.json'))) return { rows: [], prompt: 0, source: '' };
  const config = readLlamaConfig(JSON.parse(fs.readFileSync(path.join(ck, 'config.json'), 'utf8')));
  const tokenizer = loadTokenizer(ck);
  const P = quick ? 64 : 128;
  const N = quick ? 16 : 32;
  const ids = promptIds(tokenizer, P);
  const backend = await nodeBackend();
  const rows: LlmRow[] = [];
  for (const format of ['fp32', 'q8', 'q4']) {
    const graphs = fs.readdirSync(dir).filter((d) => new RegExp(`^mid-${format}(-acc4)?-(\\d+)$`).test(d) && fs.existsSync(path.join(dir, d, 'done')));
    if (!graphs.length) continue;
    const name = graphs.sort((a, b) => Number(a.split('-').pop()) - Number(b.split('-').pop()))[0]; // the smallest KV cache
    log(`hardware: LLM stage decode, ${format}...`);
    const model = await LlamaModel.create(backend, llamaModelPaths(path.join(dir, name)), { config, device: 'cpu', maxSequence: Number(name.split('-').pop()) });
    try {
      await generate(model.sequence(), ids.slice(0, 16), { maxNewTokens: 4, stopIds: [] }).done();
      const prefill: number[] = [];
      const decode: number[] = [];
      for (let r = 0; r < (quick ? 1 : 3); r++) {
        const res = await generate(model.sequence(), ids, { maxNewTokens: N, stopIds: [] }).done();
        prefill.push(res.stats.prefillTokensPerSecond);
        decode.push(res.stats.decodeTokensPerSecond);
      }
      rows.push({ format, prefill: median(prefill), decode: median(decode) });
    } finally {
      await model.dispose();
    }
  }
  return { rows, prompt: P, source: `generate() here, on the LLM stage bench's graphs: ${P}-token prompt, ${N} greedy tokens` };
}

/** The node-cpu throughput rows and the prompt length of the LLM stage bench, from RESULTS.md or a quick run. */
function llmStageRows(): { rows: LlmRow[]; prompt: number; source: string } {
  const parse = (text: string) => {
    const rows: LlmRow[] = [];
    for (const m of text.matchAll(/^\| node cpu \| (fp32|q8|q4) \| [^|]+\| [^|]+\| ([\d.]+) \| ([\d.]+) \|$/gm)) rows.push({ format: m[1], prefill: Number(m[2]), decode: Number(m[3]) });
    const prompt = Number(/prompt (\d+) tokens/.exec(text)?.[1] ?? 128);
    return { rows, prompt };
  };
  if (fs.existsSync(RESULTS)) {
    const text = fs.readFileSync(RESULTS, 'utf8');
    const section = text.slice(text.indexOf('## LLM stage'));
    const date = /Date: (\S+)/.exec(section)?.[1];
    const p = parse(section);
    if (text.includes('## LLM stage') && p.rows.length) return { ...p, source: `the "LLM stage" section of RESULTS.md (${date ?? 'undated'})` };
  }
  log('hardware: no LLM stage results recorded; running the LLM bench (node, quick)...');
  const r = spawnSync(process.execPath, [path.join(CACHE, 'llm.js'), '--quick', '--backends=node'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return { ...parse(r.stdout ?? ''), source: 'a quick run of the LLM stage bench, just now' };
}

/** Bytes of weights one decode step reads: every layer's matrices and the LM head (one embedding row is negligible). */
function weightBytesPerToken(c: LlmShape, format: string): number {
  const H = c.hidden;
  const perLayer = H * c.heads * c.headDim * 2 + H * c.kvHeads * c.headDim * 2 + 3 * H * c.intermediate;
  const matrices = c.layers * perLayer + c.vocab * H;
  // MatMulNBits, blocks of 32: bits/8 bytes per weight, an fp32 scale and a packed zero point per block.
  const perWeight = format === 'q8' ? 1 + 4 / 32 + 1 / 32 : format === 'q4' ? 0.5 + 4 / 32 + 0.5 / 32 : 4;
  return matrices * perWeight + c.layers * 2 * H * 4;
}

export interface HardwareResult {
  markdown: string;
  plots: string[];
  peakCpu: number;
  bandwidth: number;
}

export async function hardware(quick: boolean): Promise<HardwareResult> {
  const bytes = quick ? 2 ** 28 : 2 ** 30;
  const reps = quick ? 3 : 5;
  log(`hardware: memory bandwidth over ${bytes / 2 ** 20} MB...`);
  const js = jsBandwidth(bytes, reps);
  const node = await nodeBackend();
  const web = await webBackend({ numThreads: os.cpus().length });
  const ortRead = await ortBandwidth(node, 'cpu', bytes, reps);
  const gemv = await gemvBandwidth(node, 2 ** 29, reps + 2);
  log('hardware: peak MatMul FLOP/s...');
  const shapes = quick ? [[1024, 1024, 1024], [512, 1024, 2816]] : [[1024, 1024, 1024], [2048, 2048, 2048], [512, 1024, 2816], [512, 2816, 1024]];
  const cpu = await matmulPeak(node, 'cpu', shapes, quick ? 5 : 9);
  const wasm = await matmulPeak(web, 'wasm', shapes, quick ? 2 : 3);
  const peakCpu = cpu.rate;
  const peakWasm = wasm.rate;
  const bandwidth = Math.max(js.read, ortRead, gemv);
  const md: string[] = [];
  md.push('#### Measured limits');
  md.push('');
  md.push(
    table(
      ['measurement', 'value'],
      [
        [`memory read, JavaScript sum over a ${bytes / 2 ** 20} MB Float64Array (best of ${reps})`, `${fmt(js.read / 1e9, 1)} GB/s`],
        [`memory copy, TypedArray.set of ${bytes / 2 ** 20} MB (read + write bytes)`, `${fmt(js.copy / 1e9, 1)} GB/s`],
        [`memory read, onnxruntime-node ReduceSum over ${bytes / 2 ** 20} MB fp32`, `${fmt(ortRead / 1e9, 1)} GB/s`],
        [`memory read, onnxruntime-node fp32 MatMul [1, 8192] x [8192, 16384] (a decode-step GEMV over 512 MB of weights, best of ${reps + 2})`, `${fmt(gemv / 1e9, 1)} GB/s`],
        [`peak fp32 MatMul (best of ${shapes.map((x) => x.join('x')).join(', ')}: ${cpu.shape}), onnxruntime-node CPU`, `${fmt(peakCpu / 1e9, 1)} GFLOP/s`],
        [`peak fp32 MatMul (best: ${wasm.shape}), onnxruntime-web WASM (${os.cpus().length} threads)`, `${fmt(peakWasm / 1e9, 1)} GFLOP/s`],
      ],
      [false, true],
    ),
  );
  md.push('');

  const measured = await measureLlmStage(quick);
  const llm = measured.rows.length ? measured : llmStageRows();
  const cfgFile = path.join(CACHE, 'llm', 'mid-checkpoint', 'config.json');
  if (!llm.rows.length || !fs.existsSync(cfgFile)) {
    md.push('The LLM stage results are missing (run `npm run bench -- llm --record`), so decode and prefill cannot be set against the limits.');
    return { markdown: md.join('\n'), plots: [], peakCpu, bandwidth };
  }
  const c = refLlamaConfig(JSON.parse(fs.readFileSync(cfgFile, 'utf8')));
  const P = llm.prompt;
  // Prefill FLOPs per token over a P-token prompt (attention averaged over the causal triangle).
  const prefillFlopsPerToken = (2 * (c.layers * (c.hidden * c.heads * c.headDim * 2 + c.hidden * c.kvHeads * c.headDim * 2 + 3 * c.hidden * c.intermediate)) * P + (c.layers * 4 * causalPairs(P) * c.heads * c.headDim)) / P;
  md.push(`#### The LLM stage against those limits (node CPU; from ${llm.source})`);
  md.push('');
  md.push(
    `Model: width ${c.hidden}, ${c.layers} layers, ${c.heads}/${c.kvHeads} heads of ${c.headDim}, MLP ${c.intermediate}, vocabulary ${c.vocab}. A decode step must read every layer matrix and the LM head once: the bound is bandwidth (the fastest read above, ${fmt(bandwidth / 1e9, 1)} GB/s) / bytes per token. Prefill: ${fmt(prefillFlopsPerToken / 1e6, 0)} MFLOPs per token (${P}-token prompt, the LM head excluded: only the last row's logits are computed).`,
  );
  md.push('');
  const rows = llm.rows.map((r) => {
    const bpt = weightBytesPerToken(c, r.format);
    const bound = bandwidth / bpt;
    const prefillRate = r.prefill * prefillFlopsPerToken;
    return [r.format, `${fmt(bpt / 1e6, 0)} MB`, fmt(r.decode, 2), fmt(bound, 1), `${fmt((100 * r.decode) / bound, 0)} %`, fmt(r.prefill, 0), `${fmt(prefillRate / 1e9, 1)}`, `${fmt((100 * prefillRate) / peakCpu, 0)} %`];
  });
  md.push(table(['weights', 'weight bytes / token', 'decode tok/s', 'bandwidth bound tok/s', 'decode / bound', 'prefill tok/s', 'prefill GFLOP/s', 'prefill / peak fp32 MatMul'], rows, [false, true, true, true, true, true, true, true]));
  md.push('');
  md.push('8-bit and 4-bit prefill runs int8 kernels (accuracy_level 4), whose peak is not the fp32 MatMul peak: their percentages are against the fp32 peak, for scale only.');
  const file = path.join(ROOT, 'bench', 'plots', 'hardware-limit.png');
  await savePng(
    barChart({
      title: 'Decode tokens/s against the memory-bandwidth bound (node CPU)',
      categories: llm.rows.map((r) => r.format),
      series: [
        { name: 'measured decode tok/s', values: llm.rows.map((r) => r.decode) },
        { name: 'bandwidth bound tok/s', values: llm.rows.map((r) => bandwidth / weightBytesPerToken(c, r.format)) },
      ],
      yLabel: 'tokens / s',
      labels: (v) => v.toFixed(1),
    }),
    file,
  );
  return { markdown: md.join('\n'), plots: [file], peakCpu, bandwidth };
}
