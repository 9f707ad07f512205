/**
 * KV-cache and batching benchmark (issue 9) on a 1024-wide, 8-layer model (GQA 16/4 heads of 64,
 * MLP 2816, the tiny tokenizer's vocabulary):
 *
 *   npm run bench -- kv [--quick] [--sections=ratio,goal,context,concurrency] [--formats=fp32,q8,q4] [--backends=node,web] [--record]
 *
 * 1. Context: decode ms/token against the cached length on node CPU (and web WASM), for the KV
 *    modes side by side ('rows': the graph reads the cache and returns only the new rows; 'shared':
 *    GroupQueryAttention writes into a past/present buffer, which onnxruntime-node's binding then
 *    copies out whole on every run), beside what weight bytes plus KV bytes read predict, and the
 *    bytes each step moved across the JS boundary.
 * 2. Concurrency: aggregate decode tokens/s with 1, 2, 4, 8 conversations generating at once.
 * 3. Ratio and goal (by name): ms/token of a long against a short sequence stepping alternately,
 *    ~3,400 against ~100 positions in both KV modes (issue 9), ~8,000 against ~100 per weight
 *    format (issue 25).
 *
 * Checkpoint and graphs are written once under .cache/bench/kv.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '@llava-mini/core/node';
import { argmax, type KvCacheMode, type LlamaConfig, LlamaModel, llamaModelPaths, PROMPT_KERNEL_MIN_ROWS, readLlamaConfig, type Sequence, writeLlamaModel } from '@llava-mini/llm/node';
import { benchCommand, CACHE, cpuTargets, flag, fmt, listOption, LoadMeter, log, machine, median, now, RESULTS, replaceMarked, table } from './lib/common.js';
import { FORMAT_OPTIONS, type FormatName } from './lib/llm-model.js';
import { KV, seededCheckpoint } from './lib/shapes.js';

const QUICK = flag('quick');
const SECTIONS = listOption('sections', ['context', 'concurrency']); // and 'ratio', 'goal' (asked for by name)
const FORMATS = listOption('formats', ['fp32', 'q8', 'q4']) as FormatName[];
const BACKENDS = listOption('backends', ['node', 'web']);
const CONTEXTS = QUICK ? [100, 1024, 3400] : [100, 128, 512, 1024, 2048, 3400, 4096, 8000];
const MAX_SEQUENCE = KV.maxPositionEmbeddings;
const STEPS = QUICK ? 6 : 10;
const CONCURRENCY = [1, 2, 4, 8];
const CONCURRENT_TOKENS = QUICK ? 12 : 24;

const DIR = path.join(CACHE, 'kv');

async function checkpoint(): Promise<{ dir: string; config: LlamaConfig }> {
  const dir = await seededCheckpoint(path.join(DIR, 'checkpoint'), KV);
  return { dir, config: readLlamaConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))) };
}

function graphs(ck: string, config: LlamaConfig, format: FormatName, kvCache: KvCacheMode, promptKernel = true): { model: string; embeddings: string } {
  // v3: the manifest version of the graph format; p2: with the prompt kernel and its input, n: without it
  const dir = path.join(DIR, `${format}-${kvCache}-v3${promptKernel ? 'p2' : 'n'}`);
  const done = path.join(dir, 'done');
  if (!fs.existsSync(done)) {
    log(`building ${format} ${kvCache} graphs (once)...`);
    const src = Checkpoint.open(ck);
    try {
      writeLlamaModel(dir, src, config, { format: FORMAT_OPTIONS[format], maxPositions: MAX_SEQUENCE, kvCache, promptKernel });
    } finally {
      src.close();
    }
    fs.writeFileSync(done, '');
  }
  return llamaModelPaths(dir);
}

/** Bytes a decode step reads at `L` cached positions: every weight of the layers and lm_head once, plus K and V of each layer. */
function stepBytes(c: LlamaConfig, L: number, weightBytes: number): { weights: number; kv: number } {
  return { weights: weightBytes, kv: 2 * c.numLayers * c.numKvHeads * c.headDim * L * 4 };
}

function layerWeightBytes(c: LlamaConfig, format: FormatName): number {
  const H = c.hiddenSize;
  const params = c.numLayers * (2 * H * c.numHeads * c.headDim + 2 * H * c.numKvHeads * c.headDim + 3 * H * c.intermediateSize) + c.vocabSize * H;
  const perParam = format === 'fp32' ? 4 : format === 'q8' ? 1 + 4 / 32 : 0.5 + 4 / 32;
  return params * perParam;
}


const fillerIds = (n: number, vocab: number, seed = 0) => Array.from({ length: n }, (_, i) => ((i + seed) * 131 + 17) % vocab);

interface ContextRow {
  L: number;
  ms: number;
  bytesPerStep: number;
}

/** One sequence grown through CONTEXTS; at each, median ms of STEPS decode steps and the bytes they fetched. */
async function contextCurve(model: LlamaModel, contexts: number[]): Promise<ContextRow[]> {
  const seq = model.sequence();
  const rows: ContextRow[] = [];
  let id = 5;
  try {
    for (const L of contexts) {
      if (L > seq.length) id = argmax(await seq.prefill(await model.embed(fillerIds(L - seq.length, model.config.vocabSize, seq.length))));
      for (let i = 0; i < 6; i++) id = argmax(await seq.step(id)); // warm-up: the first steps after a long prefill run slower
      const before = model.traffic.fetchedBytes + model.traffic.copiedBytes;
      const wall: number[] = [];
      for (let i = 0; i < STEPS; i++) {
        const t = now();
        id = argmax(await seq.step(id));
        wall.push(now() - t);
      }
      rows.push({ L: seq.length, ms: median(wall), bytesPerStep: (model.traffic.fetchedBytes + model.traffic.copiedBytes - before) / STEPS });
      log(`  L=${seq.length}: ${fmt(median(wall))} ms/token`);
    }
  } finally {
    seq.dispose();
  }
  return rows;
}

async function contextSection(ck: { dir: string; config: LlamaConfig }, out: (s?: string) => void): Promise<void> {
  const c = ck.config;
  const w = layerWeightBytes(c, 'fp32');
  for (const t of await cpuTargets(BACKENDS)) {
    // WASM is slow at long contexts on 2 cores; its table stops at 3,400.
    const contexts = t.label.startsWith('web') ? CONTEXTS.filter((L) => L <= 3400) : CONTEXTS;
    const curves: Record<string, ContextRow[]> = {};
    for (const mode of ['rows', 'shared'] as const) {
      log(`context: ${t.label} fp32 ${mode}`);
      const model = await LlamaModel.create(t.backend, graphs(ck.dir, c, 'fp32', mode), { config: c, device: t.device, maxSequence: MAX_SEQUENCE, kvCacheBytes: 2 ** 31 });
      try {
        curves[mode] = await contextCurve(model, contexts);
      } finally {
        await model.dispose();
      }
    }
    const base = stepBytes(c, curves.rows[0].L, w);
    const rows = curves.rows.map((r, i) => {
      const s = curves.shared[i];
      const b = stepBytes(c, r.L, w);
      const predicted = (b.weights + b.kv) / (base.weights + base.kv);
      return [r.L, fmt(r.ms), `${fmt(r.ms / curves.rows[0].ms, 2)}x`, fmt(r.bytesPerStep / 1e6, 2), fmt(s.ms), `${fmt(s.ms / curves.shared[0].ms, 2)}x`, fmt(s.bytesPerStep / 1e6, 1), `${fmt(predicted, 2)}x`];
    });
    out(`**${t.label}, fp32**: decode ms/token against the cached length (one sequence grown by prefill; medians of ${STEPS} steps).`);
    out('');
    out(table(['cached positions', "'rows' ms", "'rows' / first", "'rows' MB moved/step", "'shared' ms", "'shared' / first", "'shared' MB moved/step", 'predicted / first (weights + KV bytes)'], rows));
    out('');
  }
}

/**
 * Milliseconds per decode step of a short and a long sequence of one model, measured side by side:
 * they step alternately (each step alone, so no batching), so both medians see the same machine load.
 */
async function alternating(model: LlamaModel, shortLength: number, longLength: number): Promise<{ short: number; long: number; lengths: [number, number] }> {
  const vocab = model.config.vocabSize;
  const short = model.sequence();
  const long = model.sequence();
  try {
    let a = argmax(await short.prefill(fillerIds(shortLength, vocab)));
    let b = argmax(await long.prefill(fillerIds(longLength, vocab)));
    const ta: number[] = [];
    const tb: number[] = [];
    for (let i = 0; i < 6 + 2 * STEPS; i++) {
      let t0 = now();
      a = argmax(await short.step(a));
      if (i >= 6) ta.push(now() - t0);
      t0 = now();
      b = argmax(await long.step(b));
      if (i >= 6) tb.push(now() - t0);
    }
    return { short: median(ta), long: median(tb), lengths: [short.length, long.length] };
  } finally {
    short.dispose();
    long.dispose();
  }
}

/** Issue 9's goal: ~100 against ~3,400 positions, both KV modes, fp32. */
async function ratioSection(ck: { dir: string; config: LlamaConfig }, out: (s?: string) => void): Promise<void> {
  const c = ck.config;
  const [t] = await cpuTargets(BACKENDS);
  const rows: (string | number)[][] = [];
  const w = layerWeightBytes(c, 'fp32');
  for (const mode of ['rows', 'shared'] as const) {
    const model = await LlamaModel.create(t.backend, graphs(ck.dir, c, 'fp32', mode), { config: c, device: t.device, maxSequence: MAX_SEQUENCE });
    try {
      const r = await alternating(model, 100, 3400);
      const [bs, bl] = r.lengths.map((L) => stepBytes(c, L, w));
      rows.push([`'${mode}'`, r.lengths.join(' / '), fmt(r.short), fmt(r.long), `${fmt(r.long / r.short, 2)}x`, `${fmt((bl.weights + bl.kv) / (bs.weights + bs.kv), 2)}x`]);
      log(`  ratio ${mode}: ${fmt(r.short)} vs ${fmt(r.long)} ms`);
    } finally {
      await model.dispose();
    }
  }
  out(`**${t.label}, fp32: the goal's ratio** (a ~100-position and a ~3,400-position sequence stepping alternately, ${2 * STEPS} steps each after 6 warm-up; medians). Goal: <= 1.8x.`);
  out('');
  out(table(['KV mode', 'cached positions', 'short ms', 'long ms', 'long / short', 'predicted (weights + KV bytes)'], rows));
  out('');
}

/** Prompt tokens/s of a fresh sequence given `n` rows, per model (models alternate within each of `rounds`, after one untimed round; medians). */
async function prefillRates(models: LlamaModel[], n: number, rounds: number): Promise<number[]> {
  const times: number[][] = models.map(() => []);
  for (let r = 0; r <= rounds; r++) {
    for (const [i, model] of models.entries()) {
      const seq = model.sequence();
      const embeds = await model.embed(fillerIds(n, model.config.vocabSize, r));
      const t = now();
      await seq.prefill(embeds);
      if (r > 0) times[i].push(now() - t);
      seq.dispose();
    }
  }
  return times.map((t) => n / (median(t) / 1000));
}

/**
 * ms to run `rows` new rows on top of `held` cached ones, per model and size: each model holds one
 * sequence, which runs the rows and is truncated back; models alternate (medians).
 */
async function crossover(models: LlamaModel[], held: number, sizes: number[], rounds: number): Promise<number[][]> {
  const seqs = models.map((m) => m.sequence());
  try {
    for (const [i, s] of seqs.entries()) await s.prefill(await models[i].embed(fillerIds(held, models[i].config.vocabSize)));
    const times = sizes.map(() => models.map(() => [] as number[]));
    for (let r = 0; r <= rounds; r++) {
      for (const [k, rows] of sizes.entries()) {
        for (const [i, s] of seqs.entries()) {
          const embeds = await models[i].embed(fillerIds(rows, models[i].config.vocabSize, r + 1));
          const t = now();
          await s.prefill(embeds);
          if (r > 0) times[k][i].push(now() - t);
          s.truncate(held);
        }
      }
    }
    return times.map((perModel) => perModel.map(median));
  } finally {
    seqs.forEach((s) => s.dispose());
  }
}

/**
 * Issue 25's goals for the default 'rows' decoder, per weight format: decode at ~8,000 against ~100
 * positions, and prompts with the prompt kernel (GroupQueryAttention) against without it.
 */
async function goalSection(ck: { dir: string; config: LlamaConfig }, out: (s?: string) => void): Promise<void> {
  const c = ck.config;
  const [t] = await cpuTargets(BACKENDS);
  const rows: (string | number)[][] = [];
  const prefill: (string | number)[][] = [];
  const cross: (string | number)[][] = [];
  const PROMPT = QUICK ? 1024 : 4096;
  const HELD = 3584;
  const SIZES = [1, 16, 32, 33, 48, 64, 128, 512];
  for (const format of FORMATS) {
    // The minimum is set, so the comparison also runs where the runtime would not choose the kernel (WASM).
    const open = (promptKernel: boolean, promptKernelMinRows = PROMPT_KERNEL_MIN_ROWS) =>
      LlamaModel.create(t.backend, graphs(ck.dir, c, format, 'rows', promptKernel), { config: c, device: t.device, maxSequence: MAX_SEQUENCE, promptKernelMinRows });
    const [model, without] = [await open(true), await open(false)];
    try {
      for (const [label, m] of [[format, model], [`${format}, the graph without the prompt kernel`, without]] as const) {
        const r = await alternating(m, 100, 8000);
        const [bs, bl] = r.lengths.map((L) => stepBytes(c, L, layerWeightBytes(c, format)));
        const ratio = r.long / r.short;
        rows.push([label, r.lengths.join(' / '), fmt(r.short), fmt(r.long), `${fmt(ratio, 2)}x`, `${fmt((bl.weights + bl.kv) / (bs.weights + bs.kv), 2)}x`, fmt(bl.kv / 1e6, 0), ratio <= 1.6 ? 'met' : 'not met']);
        log(`  goal ${label}: ${fmt(r.short)} vs ${fmt(r.long)} ms`);
      }
      const [withKernel, withoutKernel] = await prefillRates([model, without], PROMPT, QUICK ? 1 : 3);
      prefill.push([format, fmt(withKernel), fmt(withoutKernel), `${fmt(withKernel / withoutKernel, 2)}x`]);
      log(`  prefill ${format}: ${fmt(withKernel)} vs ${fmt(withoutKernel)} tok/s`);
      // Where the kernels cross: every size through each kernel (a minimum of 1 row), one model at a
      // time beside the graph without the kernel. On WASM, 3,584 held rows take most of an hour.
      if (format === FORMATS[0] && t.label.startsWith('node')) {
        const every = await open(true, 1);
        try {
          const ms = await crossover([every, without], HELD, SIZES, QUICK ? 3 : 9);
          SIZES.forEach((n, k) => cross.push([n, fmt(ms[k][0], 1), fmt(ms[k][1], 1), `${fmt(ms[k][1] / ms[k][0], 2)}x`]));
        } finally {
          await every.dispose();
        }
      }
    } finally {
      await model.dispose();
      await without.dispose();
    }
  }
  out(`**${t.label}: long-context decode, the goal row** (the default 'rows' decoder; a ~100-position and a ~8,000-position sequence stepping alternately, ${2 * STEPS} steps each after 6 warm-up; medians; the KV cache is float32 in every format). Goal: <= 1.6x.`);
  out('');
  out(table(['weights', 'cached positions', 'short ms', 'long ms', 'long / short', 'predicted (weights + KV bytes)', 'KV MB read at ~8,000', 'goal'], rows));
  out('');
  out(`**${t.label}: a ${PROMPT}-token prompt** (chunks of 512 rows; medians of ${QUICK ? 1 : 3} alternating runs after an untimed one each), the graph with the prompt kernel (each chunk through GroupQueryAttention) against the same graph without it (every chunk through the decode kernel, as before).`);
  out('');
  out(table(['weights', 'prompt kernel tok/s', 'decode kernel only tok/s', 'speed-up'], prefill));
  out('');
  if (cross.length) {
    out(`**${t.label}, ${FORMATS[0]}: where the kernels cross** (a run of N new rows on top of ${HELD} cached ones, then rolled back; GroupQueryAttention for every N, against the graph without it; both alternate, medians of ${QUICK ? 3 : 9}). The model takes GroupQueryAttention from ${PROMPT_KERNEL_MIN_ROWS} rows.`);
    out('');
    out(table(['new rows', 'GroupQueryAttention ms', 'decode kernel ms', 'speed-up'], cross));
    out('');
  }
}

/**
 * Aggregate decode tokens/s of `n` sequences decoding at the same time: all prefill first (not
 * timed), then each runs CONCURRENT_TOKENS greedy steps concurrently; tokens over wall time.
 */
async function concurrent(model: LlamaModel, n: number): Promise<number> {
  const seqs: Sequence[] = Array.from({ length: n }, () => model.sequence());
  try {
    const first = await Promise.all(seqs.map(async (s, i) => argmax(await s.prefill(fillerIds(32, model.config.vocabSize, 7 * i)))));
    const t = now();
    await Promise.all(
      seqs.map(async (s, i) => {
        let id = first[i];
        for (let k = 0; k < CONCURRENT_TOKENS; k++) id = argmax(await s.step(id));
      }),
    );
    return (n * CONCURRENT_TOKENS) / ((now() - t) / 1000);
  } finally {
    seqs.forEach((s) => s.dispose());
  }
}

async function concurrencySection(ck: { dir: string; config: LlamaConfig }, out: (s?: string) => void): Promise<void> {
  const [t] = await cpuTargets(BACKENDS);
  const rows: (string | number)[][] = [];
  // The fp32 'shared' graph runs one step per sequence (no batching): the same conversations queued run by run.
  const variants: { label: string; format: FormatName; mode: KvCacheMode }[] = [
    ...FORMATS.map((format) => ({ label: format, format, mode: 'rows' as const })),
    { label: "fp32, one run per sequence ('shared', unbatched)", format: 'fp32', mode: 'shared' },
  ];
  for (const v of variants) {
    const model = await LlamaModel.create(t.backend, graphs(ck.dir, ck.config, v.format, v.mode), { config: ck.config, device: t.device, maxSequence: 512 });
    try {
      await concurrent(model, 1); // warm-up
      const tps = [];
      for (const n of CONCURRENCY) {
        tps.push(await concurrent(model, n));
        log(`  ${v.label} x${n}: ${fmt(tps[tps.length - 1])} tokens/s`);
      }
      rows.push([v.label, ...tps.map((x) => fmt(x)), `${fmt(tps[2] / tps[0], 2)}x`]);
    } finally {
      await model.dispose();
    }
  }
  out(`**${t.label}**: aggregate decode tokens/s of n sequences stepping at once (${CONCURRENT_TOKENS} greedy steps each after a 32-token prompt; wall time of the decode phase). Batched: one decoder run per step for all n.`);
  out('');
  out(table(['weights', ...CONCURRENCY.map((n) => `${n} at once`), '4 / 1'], rows));
  out('');
}

async function main(): Promise<void> {
  const ck = await checkpoint();
  const meter = new LoadMeter();
  const lines: string[] = [];
  const out = (s = '') => {
    lines.push(s);
    console.log(s);
  };
  if (SECTIONS.includes('ratio')) await ratioSection(ck, out);
  if (SECTIONS.includes('goal')) await goalSection(ck, out);
  if (SECTIONS.includes('context')) await contextSection(ck, out);
  if (SECTIONS.includes('concurrency')) await concurrencySection(ck, out);
  const c = ck.config;
  const head = [
    `Command: \`${benchCommand('kv')}\`, ${new Date().toISOString().slice(0, 16)} UTC.`,
    `Machine: ${machine()}; ${meter.report()}.`,
    `Model: width ${c.hiddenSize}, ${c.numLayers} layers, ${c.numHeads}/${c.numKvHeads} heads of ${c.headDim}, MLP ${c.intermediateSize}, vocabulary ${c.vocabSize}; fp32 weights ${fmt(layerWeightBytes(c, 'fp32') / 1e6, 0)} MB read per step.`,
  ];
  console.log(head.join('\n'));
  const title = SECTIONS.includes('goal') ? 'Long-context decode (issue 25)' : 'KV cache and batching (issue 9)';
  if (flag('record')) replaceMarked(RESULTS, `kv-bench-${SECTIONS.join('-')}`, [`### ${title}: ${SECTIONS.join(', ')}`, '', ...head, '', ...lines].join('\n'));
}

await main();
