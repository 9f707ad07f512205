/**
 * A peer on the same weights: llama.cpp (through node-llama-cpp, installed on its own with
 * `npm ci --prefix bench`) runs the LLM stage bench's backbone, exported to GGUF by lib/gguf-llama.ts,
 * next to ours on onnxruntime-node CPU: the same prompt ids, greedy, the same thread count.
 *
 * Rows pair our format with the GGUF type that does the same work: fp32 with F32, fp16 with F16,
 * 8-bit MatMulNBits (block 32, zero points, accuracy level 4: int8 activations) with Q8_0 (block 32,
 * symmetric, int8 activations), 4-bit with Q4_0 (the same, 4-bit). Both are timed from outside, a
 * run at a time, alternating: prefill = prompt tokens / time to the first token, decode = tokens
 * after the first / their time; the long-context point prefills ~4k tokens and takes the median step.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { nodeBackend } from '@llava-mini/core/node';
import { argmax, generate, type LlamaConfig, LlamaModel, loadTokenizer } from '@llava-mini/llm/node';
import { CACHE, fmt, log, median, now, promptIds, ROOT, table } from './lib/common.js';
import { type GgufWeights, ggufStepBytes, writeLlamaGguf } from './lib/gguf-llama.js';
import { type FormatName, llmGraphs, midCheckpoint } from './lib/llm-model.js';

/** What this bench uses of node-llama-cpp's API (declared here so the bench type-checks without it installed). */
interface NodeLlamaCpp {
  getLlama(o: { gpu: false; build: 'never'; logLevel?: string; maxThreads?: number }): Promise<Llama>;
}
interface Llama {
  loadModel(o: { modelPath: string; gpuLayers: 0 }): Promise<LlamaCppModel>;
  dispose(): Promise<void>;
}
interface LlamaCppModel {
  tokenize(text: string, specialTokens?: boolean): number[];
  createContext(o: { contextSize: number; batchSize: number; threads: { ideal: number; min: number }; experimentalKvCacheKeyType?: string; experimentalKvCacheValueType?: string }): Promise<LlamaCppContext>;
  dispose(): Promise<void>;
}
interface LlamaCppContext {
  getSequence(): LlamaCppSequence;
  dispose(): Promise<void>;
}
interface LlamaCppSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], o: { temperature: 0 }): AsyncGenerator<number, void, void>;
}

const PAIRS: Record<FormatName, GgufWeights> = { fp32: 'F32', fp16: 'F16', q8: 'Q8_0', q4: 'Q4_0' };
const GGUF_DIR = path.join(CACHE, 'llamacpp');

async function loadNodeLlamaCpp(): Promise<NodeLlamaCpp | string> {
  let entry: string;
  try {
    entry = createRequire(path.join(ROOT, 'bench', 'package.json')).resolve('node-llama-cpp');
  } catch {
    return 'node-llama-cpp is not installed: run `npm ci --prefix bench` (bench/package.json pins node-llama-cpp 3.21.1; about 700 MB of prebuilt binaries), then this command again.';
  }
  return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
}

/** The GGUF of `checkpoint` in `type`, written once per checkpoint. */
function gguf(checkpoint: string, type: GgufWeights): string {
  const file = path.join(GGUF_DIR, `mid-${type}.gguf`);
  const stamp = `${file}.source`;
  if (fs.existsSync(file) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === checkpoint) return file;
  fs.mkdirSync(GGUF_DIR, { recursive: true });
  log(`llamacpp: writing ${file} (once)...`);
  const t = now();
  const bytes = writeLlamaGguf(checkpoint, file, type);
  fs.writeFileSync(stamp, checkpoint);
  log(`  ${fmt((now() - t) / 1000)} s, ${fmt(bytes / 1e9, 2)} GB`);
  return file;
}

interface Run {
  prefill: number;
  decode: number;
  ids: number[];
}

interface LongRun {
  prefill: number;
  stepMs: number;
}

/** First index where two id lists differ, or -1. */
function firstDifference(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

export interface LlamaCppOptions {
  quick: boolean;
  threads?: number;
  formats?: string[];
}

export async function llamacpp(o: LlamaCppOptions): Promise<{ markdown: string; plots: string[] }> {
  const lib = await loadNodeLlamaCpp();
  if (typeof lib === 'string') return { markdown: lib, plots: [] };
  const threads = o.threads ?? os.cpus().length;
  const formats = (o.formats ?? ['fp32', 'q8', 'q4']) as FormatName[];
  for (const f of formats) if (!(f in PAIRS)) throw new Error(`--formats: unknown format ${f} (known: ${Object.keys(PAIRS).join(', ')})`);
  const P = o.quick ? 64 : 128;
  const N = o.quick ? 16 : 32;
  const LONG = o.quick ? 1024 : 4096;
  const reps = o.quick ? 2 : 4;
  const steps = o.quick ? 8 : 16;
  const warm = 4;
  const maxSequence = 4096 + 64; // the LLM stage bench's graphs (shared cache) cover 4096 + its timed steps
  const { dir, config } = await midCheckpoint();
  const tokenizer = loadTokenizer(dir);
  const ids = promptIds(tokenizer, P);
  const longIds = promptIds(tokenizer, LONG);
  const backend = await nodeBackend();
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: 'error' });

  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  try {
    for (const f of formats) {
      const type = PAIRS[f];
      const graphs = llmGraphs(dir, config, f, maxSequence);
      const file = gguf(dir, type);
      log(`llamacpp: ${f} vs ${type}, ${threads} threads each...`);
      const ours = await LlamaModel.create(backend, graphs, { config, device: 'cpu', maxSequence, dtype: f === 'fp16' ? 'float16' : 'float32', session: { intraOpNumThreads: threads } });
      const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
      // llama.cpp's KV cache is F16 by default; fp32 runs keep it F32 like ours, so the greedy tokens can be compared.
      const kv = f === 'fp32' ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {};
      const ctx = await model.createContext({ contextSize: maxSequence, batchSize: 512, threads: { ideal: threads, min: threads }, ...kv });
      const seq = ctx.getSequence();
      try {
        if (f === formats[0]) {
          const text = 'The photo shows a city street at night — 3 cars, «buses» and 人々.';
          const same = JSON.stringify(model.tokenize(text, false)) === JSON.stringify(tokenizer.encode(text, { addSpecialTokens: false }));
          notes.push(`Tokenizer exported to GGUF: llama.cpp's tokenization of ${JSON.stringify(text)} ${same ? 'matches ours' : 'differs from ours'}.`);
        }
        const runOurs = async (prompt: number[], n: number): Promise<Run> => {
          ours.reset();
          const r = await generate(ours, prompt, { maxNewTokens: n, stopIds: [] }).done();
          return { prefill: r.stats.prefillTokensPerSecond, decode: r.stats.decodeTokensPerSecond, ids: r.ids };
        };
        const runTheirs = async (prompt: number[], n: number): Promise<Run & { times: number[] }> => {
          await seq.clearHistory();
          const out: number[] = [];
          const times: number[] = [];
          const t0 = now();
          for await (const id of seq.evaluate(prompt, { temperature: 0 })) {
            times.push(now());
            out.push(id);
            if (out.length === n) break;
          }
          const prefill = prompt.length / ((times[0] - t0) / 1000);
          const decode = n > 1 ? (n - 1) / ((times[n - 1] - times[0]) / 1000) : 0;
          return { prefill, decode, ids: out, times };
        };
        await runOurs(promptIds(tokenizer, 16), 8); // warm-up: weights paged in, arenas grown
        await runTheirs(promptIds(tokenizer, 16), 8);
        const a: Run[] = [];
        const b: Run[] = [];
        for (let r = 0; r < reps; r++) {
          a.push(await runOurs(ids, N));
          b.push(await runTheirs(ids, N));
        }
        // ~4k context: one long prefill each, then the median of `steps` decode steps after `warm`.
        const longOurs = async (): Promise<LongRun> => {
          ours.reset();
          const t0 = now();
          let id = argmax(await ours.prefill(await ours.embed(longIds)));
          const prefill = longIds.length / ((now() - t0) / 1000);
          const ms: number[] = [];
          for (let i = 0; i < warm + steps; i++) {
            const t = now();
            id = argmax(await ours.step(id));
            if (i >= warm) ms.push(now() - t);
          }
          return { prefill, stepMs: median(ms) };
        };
        const longTheirs = async (): Promise<LongRun> => {
          const r = await runTheirs(longIds, warm + steps + 1);
          const ms = r.times.slice(warm + 1).map((t, i) => t - r.times[warm + i]);
          return { prefill: r.prefill, stepMs: median(ms) };
        };
        const la = await longOurs();
        const lb = await longTheirs();
        ours.reset();
        await seq.clearHistory();

        const m = (xs: Run[], k: 'prefill' | 'decode') => median(xs.map((x) => x[k]));
        const diff = firstDifference(a[0].ids, b[0].ids);
        const stable = a.every((x) => firstDifference(x.ids, a[0].ids) < 0) && b.every((x) => firstDifference(x.ids, b[0].ids) < 0);
        const same = diff < 0 ? `all ${N}` : `first ${diff} of ${N}`;
        rows.push([
          `${f} / ${type}`,
          fmt(m(a, 'prefill')),
          fmt(m(b, 'prefill')),
          `${fmt(m(a, 'prefill') / m(b, 'prefill'), 2)}x`,
          fmt(m(a, 'decode'), 2),
          fmt(m(b, 'decode'), 2),
          `${fmt(m(a, 'decode') / m(b, 'decode'), 2)}x`,
          fmt(1000 / la.stepMs, 2),
          fmt(1000 / lb.stepMs, 2),
          `${fmt(lb.stepMs / la.stepMs, 2)}x`,
          fmt(la.prefill),
          fmt(lb.prefill),
          `${same}${stable ? '' : ' (runs differ)'}`,
        ]);
        notes.push(`${f} / ${type}: GGUF ${fmt(fs.statSync(file).size / 1e9, 2)} GB, ${fmt(ggufStepBytes(config, type) / 1e6, 0)} MB of weights read per decode step by llama.cpp.`);
      } finally {
        await ctx.dispose();
        await model.dispose();
        await ours.dispose();
      }
    }
  } finally {
    await llama.dispose();
  }
  const c: LlamaConfig = config;
  const markdown = [
    `Model: the LLM stage bench's backbone (width ${c.hiddenSize}, ${c.numLayers} layers, GQA ${c.numHeads}/${c.numKvHeads} heads of ${c.headDim}, MLP ${c.intermediateSize}, vocabulary ${c.vocabSize}, seeded random weights), the same weights in both. llama.cpp = node-llama-cpp 3.21.1's prebuilt CPU build; ours = onnxruntime-node 1.30 CPU. ${threads} threads each (onnxruntime intra_op_num_threads, llama.cpp context threads). Prompt ${P} tokens, ${N} greedy tokens, medians of ${reps} alternating runs after a warm-up; ~4k context: a ${LONG}-token prefill each, then the median of ${steps} decode steps after ${warm}. KV cache: fp32 in ours; llama.cpp F32 in the fp32 row, its default F16 otherwise. Ratios are ours / llama.cpp (above 1: we are faster), measured side by side in one run on a shared 2-core machine.`,
    '',
    table(
      ['weights (ours / GGUF)', 'ours prefill tok/s', 'llama.cpp prefill tok/s', 'prefill ratio', 'ours decode tok/s', 'llama.cpp decode tok/s', 'decode ratio', `ours decode @${LONG} tok/s`, `llama.cpp decode @${LONG} tok/s`, `decode @${LONG} ratio`, `ours prefill ${LONG} tok/s`, `llama.cpp prefill ${LONG} tok/s`, 'same greedy tokens'],
      rows,
      [false, true, true, true, true, true, true, true, true, true, true, true, false],
    ),
    '',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
  return { markdown, plots: [] };
}
