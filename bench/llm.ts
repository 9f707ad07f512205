/**
 * LLM-stage benchmark: the LLaMA backbone on onnxruntime-node (CPU) and onnxruntime-web (WASM).
 *
 *   npm run bench -- llm              full run (mid-size model, 128 vs 4096 context)
 *   npm run bench -- llm --quick      a couple of minutes on 2 cores (once the cache is built)
 *   options: --backends=node,web  --formats=fp32,q8,q4  --sections=throughput,context
 *            --record (write bench/RESULTS.md's "LLM stage")
 *
 * 1. Throughput: prefill and decode tokens/s of generate() at a mid-size config (397 M parameters:
 *    Llama-3 shapes at width 1024, 12 layers, GQA 16/4 heads, the real 128256-token vocabulary) for
 *    fp32, 8-bit and 4-bit weights (MatMulNBits, block 32).
 * 2. Context: decode ms/token at a short and a long context next to the attention-FLOPs ratio, and
 *    the JavaScript time per token outside onnxruntime, which must not grow with the context (the KV
 *    cache is a preallocated buffer written in place, never copied per token in JavaScript).
 *
 * Checkpoints and graphs are generated once under <repo>/.cache/bench/llm (gitignored).
 */
import { argmax, generate, type LlamaConfig, LlamaModel, loadTokenizer, type Sequence, type Tokenizer } from '@llava-mini/llm/node';
import { benchCommand, cpuTargets, flag, fmt, listOption, LoadMeter, log, machine, median, now, promptIds, RESULTS, replaceMarked, type Target } from './lib/common.js';
import { type FormatName, llmGraphs, midCheckpoint } from './lib/llm-model.js';

const QUICK = flag('quick') || process.env.LLM_BENCH_QUICK === '1';
const BACKENDS = listOption('backends', ['node', 'web']);
const FORMATS = listOption('formats', ['fp32', 'q8', 'q4']);
const SECTIONS = listOption('sections', ['throughput', 'context']);

const PROMPT = QUICK ? 64 : 128;
const DECODE = QUICK ? 16 : 32;
const SHORT = 128;
const LONG = QUICK ? 1024 : 4096;
const CONTEXT_STEPS = QUICK ? 8 : 16;
const WARMUP_STEPS = 8; // the first steps after loading or a long prefill run several times slower
// Quantized weights decode at about 1 s/token on WASM, so the long-context run there uses fp32 only.
const CONTEXT_FORMATS: Record<string, FormatName[]> = { 'node cpu': QUICK ? ['fp32'] : ['fp32', 'q4'], 'web wasm': ['fp32'] };
const MAX_SEQUENCE = LONG + 64; // room for the warm-up and timed steps

/** The seeded checkpoint and each format's graphs (written once, shared with the llama.cpp peer). */
async function prepare(): Promise<{ config: LlamaConfig; tokenizer: Tokenizer; graphs: Record<string, { model: string; embeddings: string }> }> {
  const { dir, config } = await midCheckpoint();
  const graphs: Record<string, { model: string; embeddings: string }> = {};
  for (const name of new Set([...FORMATS, ...Object.values(CONTEXT_FORMATS).flat()]) as Set<FormatName>) graphs[name] = llmGraphs(dir, config, name, MAX_SEQUENCE);
  return { config, tokenizer: loadTokenizer(dir), graphs };
}

/** Parameters outside the embedding table (what a decode step multiplies by). */
function activeParams(c: LlamaConfig): number {
  const H = c.hiddenSize;
  const attn = H * c.numHeads * c.headDim * 2 + H * c.numKvHeads * c.headDim * 2;
  const mlp = 3 * H * c.intermediateSize;
  return c.numLayers * (attn + mlp + 2 * H) + H + c.vocabSize * H;
}

/** FLOPs of one decode step at context L: weights (2 per parameter) plus attention (QK^T and AV). */
function decodeFlops(c: LlamaConfig, L: number): { weights: number; attention: number } {
  return { weights: 2 * activeParams(c), attention: c.numLayers * 4 * c.numHeads * c.headDim * L };
}


interface ThroughputRow {
  target: string;
  format: string;
  load: number;
  ttft: number;
  prefill: number;
  decode: number;
}

async function throughput(t: Target, format: FormatName, files: { model: string; embeddings: string }, config: LlamaConfig, tokenizer: Tokenizer): Promise<ThroughputRow> {
  const t0 = now();
  const model = await LlamaModel.create(t.backend, files, { config, device: t.device, maxSequence: MAX_SEQUENCE });
  const load = (now() - t0) / 1000;
  try {
    // Warm-up: the first runs after loading are several times slower (weights paged in, arenas grown).
    await generate(model.sequence(), promptIds(tokenizer, 16), { maxNewTokens: t.label.startsWith('web') && format !== 'fp32' ? 2 : 8, stopIds: [] }).done();
    const r = await generate(model.sequence(), promptIds(tokenizer, PROMPT), { maxNewTokens: DECODE, stopIds: [] }).done();
    return { target: t.label, format, load, ttft: r.stats.timeToFirstTokenMs, prefill: r.stats.prefillTokensPerSecond, decode: r.stats.decodeTokensPerSecond };
  } finally {
    await model.dispose();
  }
}

interface ContextPoint {
  msPerToken: number;
  jsMsPerToken: number;
  cacheMB: number;
}


/** Time `n` single-token steps of `seq` on `model`; returns per-step wall times and the part spent outside onnxruntime. */
async function timeSteps(model: LlamaModel, seq: Sequence, id: number, n: number): Promise<{ id: number; wall: number[]; js: number[] }> {
  const wall: number[] = [];
  const js: number[] = [];
  for (let i = 0; i < n; i++) {
    const runMs = model.profile.runMs;
    const t0 = now();
    id = argmax(await seq.step(id));
    const ms = now() - t0;
    wall.push(ms);
    js.push(ms - (model.profile.runMs - runMs));
  }
  return { id, wall, js };
}

/**
 * Decode cost at SHORT and LONG cached positions. SHORT is timed before and after LONG (on a fresh
 * cache each time, so the cache's capacity fits the context), which brackets the LONG run in time
 * against machine noise; LONG extends the first SHORT sequence by a real prefill. Medians per step.
 */
async function contextScaling(model: LlamaModel, tokenizer: Tokenizer): Promise<{ short: ContextPoint; long: ContextPoint }> {
  const shortWall: number[] = [];
  const shortJs: number[] = [];
  let shortMB = 0;
  const runShort = async () => {
    const seq = model.sequence();
    let id = argmax(await seq.prefill(await model.embed(promptIds(tokenizer, SHORT))));
    ({ id } = await timeSteps(model, seq, id, WARMUP_STEPS));
    const r = await timeSteps(model, seq, id, CONTEXT_STEPS);
    shortWall.push(...r.wall);
    shortJs.push(...r.js);
    shortMB = seq.cacheBytes / 2 ** 20;
    return seq;
  };
  const seq = await runShort();
  let next = argmax(await seq.prefill(await model.embed(promptIds(tokenizer, LONG - seq.length))));
  ({ id: next } = await timeSteps(model, seq, next, WARMUP_STEPS));
  const long = await timeSteps(model, seq, next, CONTEXT_STEPS);
  const longMB = seq.cacheBytes / 2 ** 20;
  seq.dispose();
  (await runShort()).dispose();
  return {
    short: { msPerToken: median(shortWall), jsMsPerToken: median(shortJs), cacheMB: shortMB },
    long: { msPerToken: median(long.wall), jsMsPerToken: median(long.js), cacheMB: longMB },
  };
}


async function main(): Promise<void> {
  const { config, tokenizer, graphs } = await prepare();
  const meter = new LoadMeter();
  const params = activeParams(config) + (config.tieWordEmbeddings ? 0 : config.vocabSize * config.hiddenSize);
  const lines: string[] = [];
  const out = (s = '') => {
    lines.push(s);
    console.log(s);
  };
  out(`Model: ${(params / 1e6).toFixed(0)} M parameters (width ${config.hiddenSize}, ${config.numLayers} layers, ${config.numHeads} heads / ${config.numKvHeads} KV heads of ${config.headDim}, MLP ${config.intermediateSize}, vocabulary ${config.vocabSize}, untied lm_head); KV cache ${MAX_SEQUENCE} positions.`);
  out(`Weights: fp32; q8 / q4 = symmetric MatMulNBits blocks of 32 with accuracy_level 4 (layers and lm_head) and a GatherBlockQuantized embedding table.`);
  out(`Mode: ${QUICK ? 'quick' : 'full'}; prompt ${PROMPT} tokens, ${DECODE} decoded (greedy); context ${SHORT} vs ${LONG}: medians of ${CONTEXT_STEPS} steps (${SHORT}: before and after the ${LONG} run).`);
  out();

  const ts = await cpuTargets(BACKENDS);
  out('### Throughput (generate(): prefill, then greedy decode)');
  out();
  out('| backend | weights | load s | time to first token ms | prefill tok/s | decode tok/s |');
  out('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const t of SECTIONS.includes('throughput') ? ts : []) {
    for (const f of FORMATS as FormatName[]) {
      log(`throughput: ${t.label} ${f}...`);
      const r = await throughput(t, f, graphs[f], config, tokenizer);
      out(`| ${r.target} | ${r.format} | ${fmt(r.load)} | ${fmt(r.ttft, 0)} | ${fmt(r.prefill)} | ${fmt(r.decode, 2)} |`);
    }
  }
  out();

  const short = decodeFlops(config, SHORT);
  const long = decodeFlops(config, LONG);
  const attnRatio = long.attention / short.attention;
  const totalRatio = (long.weights + long.attention) / (short.weights + short.attention);
  out(`### Decode cost against context (${SHORT} vs ${LONG} cached positions)`);
  out();
  out(`Attention FLOPs per token grow ${fmt(attnRatio, 0)}x; all FLOPs per token (weights + attention) grow ${fmt(totalRatio, 2)}x. ` + '"JS ms/token" is the time per step outside onnxruntime (feeds, sampling, bookkeeping). "KV MB" is the cache as allocated (it grows with the context): both runtimes copy it on every run (onnxruntime-node copies each fetched output into a new ArrayBuffer; onnxruntime-web copies inputs into the WASM heap and outputs back), which is most of the growth in time.');
  out();
  out(`| backend | weights | ms/token @${SHORT} | ms/token @${LONG} | time ratio | FLOPs ratio (attention) | FLOPs ratio (all) | KV MB @${SHORT} / @${LONG} | JS ms/token @${SHORT} | JS ms/token @${LONG} |`);
  out('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const t of SECTIONS.includes('context') ? ts : []) {
    for (const f of CONTEXT_FORMATS[t.label]) {
      log(`context: ${t.label} ${f}...`);
      const model = await LlamaModel.create(t.backend, graphs[f], { config, device: t.device, maxSequence: MAX_SEQUENCE });
      try {
        const { short: a, long: b } = await contextScaling(model, tokenizer);
        out(`| ${t.label} | ${f} | ${fmt(a.msPerToken)} | ${fmt(b.msPerToken)} | ${fmt(b.msPerToken / a.msPerToken, 2)} | ${fmt(attnRatio, 0)} | ${fmt(totalRatio, 2)} | ${fmt(a.cacheMB, 0)} / ${fmt(b.cacheMB, 0)} | ${fmt(a.jsMsPerToken, 2)} | ${fmt(b.jsMsPerToken, 2)} |`);
      } finally {
        await model.dispose();
      }
    }
  }

  out();
  out(`Machine load: ${meter.report()}.`);

  if (flag('record')) {
    const head = [`Command: \`${benchCommand('llm')}\`  `, `Machine: ${machine()}, onnxruntime 1.30  `, `Date: ${new Date().toISOString().slice(0, 10)}`];
    replaceMarked(RESULTS, 'llm-stage', ['## LLM stage', '', ...head, '', ...lines].join('\n'));
    log('recorded in bench/RESULTS.md');
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
