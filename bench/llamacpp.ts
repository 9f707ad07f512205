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
import { CACHE, decoderStepBytes, fmt, log, median, now, promptIds, ROOT, table } from './lib/common.js';
import { type GgufWeights, ggufStepBytes, writeLlamaGguf } from './lib/gguf-llama.js';
import { type FormatName, llmGraphs, midCheckpoint } from './lib/llm-model.js';
import { gemvBandwidth } from './hardware.js';

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

export async function loadNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  let entry: string;
  try {
    entry = createRequire(path.join(ROOT, 'bench', 'package.json')).resolve('node-llama-cpp');
  } catch {
    throw new Error('node-llama-cpp is not installed: run `npm ci --prefix bench` (bench/package.json pins node-llama-cpp 3.21.1; about 700 MB of prebuilt binaries), then this command again.');
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

/** Wall and CPU time (ms, this process: both runtimes run in it) at the start and after each token. */
interface Trace {
  ids: number[];
  wall: number[];
  cpu: number[];
}

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Take `n` tokens from a greedy token stream over `prompt`, timing each. */
async function trace(tokens: AsyncIterable<number>, n: number): Promise<Trace> {
  const t: Trace = { ids: [], wall: [now()], cpu: [cpuMs()] };
  for await (const id of tokens) {
    t.wall.push(now());
    t.cpu.push(cpuMs());
    t.ids.push(id);
    if (t.ids.length === n) break;
  }
  return t;
}

/** Prefill tok/s (prompt / time to the first token), decode tok/s and CPU ms per decoded token (after the first). */
function rates(t: Trace, prompt: number): { prefill: number; decode: number; decodeCpu: number } {
  const n = t.ids.length;
  return { prefill: prompt / ((t.wall[1] - t.wall[0]) / 1000), decode: (n - 1) / ((t.wall[n] - t.wall[1]) / 1000), decodeCpu: (t.cpu[n] - t.cpu[1]) / (n - 1) };
}

/** Median step of a trace after `skip` steps: wall ms and CPU ms. */
function medianStep(t: Trace, skip: number): { wall: number; cpu: number } {
  const steps = (xs: number[]) => xs.slice(2 + skip).map((x, i) => x - xs[1 + skip + i]);
  return { wall: median(steps(t.wall)), cpu: median(steps(t.cpu)) };
}

/** First index where two id lists differ, or -1. */
function firstDifference(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

export interface LlamaCppOptions {
  quick: boolean;
  /** Thread counts to run (each a row per format); default all cores. */
  threads?: number[];
  formats?: string[];
}

export async function llamacpp(o: LlamaCppOptions): Promise<{ markdown: string; plots: string[] }> {
  const lib = await loadNodeLlamaCpp();
  const threadCounts = o.threads ?? [os.cpus().length];
  const formats = (o.formats ?? ['fp32', 'q8', 'q4']) as FormatName[];
  for (const f of formats) if (!(f in PAIRS)) throw new Error(`--formats: unknown format ${f} (known: ${Object.keys(PAIRS).join(', ')})`);
  const P = o.quick ? 64 : 128;
  const N = o.quick ? 16 : 32;
  const LONG = o.quick ? 1024 : 4096;
  const reps = o.quick ? 2 : 3;
  const steps = o.quick ? 8 : 16;
  const warm = 4;
  const maxSequence = 4096 + 64; // the LLM stage bench's graphs (shared cache) cover 4096 + its timed steps
  const { dir, config } = await midCheckpoint();
  const tokenizer = loadTokenizer(dir);
  const ids = promptIds(tokenizer, P);
  const longIds = promptIds(tokenizer, LONG);
  const backend = await nodeBackend();
  // The decode bound: onnxruntime's fp32 GEMV over 512 MB (weights streamed from memory once per token).
  const bandwidth = await gemvBandwidth(backend, 512 * 2 ** 20, 3);
  const boundRows: (string | number)[][] = [];
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: 'error' });

  const rows: (string | number)[][] = [];
  const cpuRows: (string | number)[][] = [];
  const notes: string[] = [];
  try {
    for (const f of formats) {
      const type = PAIRS[f];
      const graphs = llmGraphs(dir, config, f, maxSequence);
      const file = gguf(dir, type);
      const oursStepBytes = decoderStepBytes(graphs);
      const theirsStepBytes = ggufStepBytes(config, type);
      notes.push(`${f} / ${type}: GGUF ${fmt(fs.statSync(file).size / 1e9, 2)} GB; a decode step reads ${fmt(ggufStepBytes(config, type) / 1e6, 0)} MB of llama.cpp's weights.`);
      for (const threads of threadCounts) {
        log(`llamacpp: ${f} vs ${type}, ${threads} thread(s) each...`);
        const ours = await LlamaModel.create(backend, graphs, { config, device: 'cpu', maxSequence, session: { intraOpNumThreads: threads } });
        const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
        // llama.cpp's KV cache is F16 by default; fp32 runs keep it F32 like ours, so the greedy tokens can be compared.
        const kv = f === 'fp32' ? { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {};
        const ctx = await model.createContext({ contextSize: maxSequence, batchSize: 512, threads: { ideal: threads, min: threads }, ...kv });
        const seq = ctx.getSequence();
        try {
          if (notes.length === 1) {
            const text = 'The photo shows a city street at night — 3 cars, «buses» and 人々.';
            const same = JSON.stringify(model.tokenize(text, false)) === JSON.stringify(tokenizer.encode(text, { addSpecialTokens: false }));
            notes.unshift(`Tokenizer exported to GGUF: llama.cpp's tokenization of ${JSON.stringify(text)} ${same ? 'matches ours' : 'differs from ours'}.`);
          }
          // Ours: what generate() runs per token (LlamaModel.embed + prefill/step, greedy argmax), without its text streaming.
          const oursTokens = async function* (prompt: number[]): AsyncGenerator<number> {
            const s = ours.sequence();
            try {
              let id = argmax(await s.prefill(await ours.embed(prompt)));
              for (;;) {
                yield id;
                id = argmax(await s.step(id));
              }
            } finally {
              s.dispose();
            }
          };
          const theirsTokens = async function* (prompt: number[]): AsyncGenerator<number> {
            await seq.clearHistory();
            yield* seq.evaluate(prompt, { temperature: 0 });
          };
          await trace(oursTokens(promptIds(tokenizer, 16)), 8); // warm-up: weights paged in, arenas grown
          await trace(theirsTokens(promptIds(tokenizer, 16)), 8);
          const a: Trace[] = [];
          const b: Trace[] = [];
          for (let r = 0; r < reps; r++) {
            a.push(await trace(oursTokens(ids), N));
            b.push(await trace(theirsTokens(ids), N));
          }
          // ~4k context: one long prefill each, then the median of `steps` decode steps after `warm`.
          const la = await trace(oursTokens(longIds), warm + steps + 1);
          const lb = await trace(theirsTokens(longIds), warm + steps + 1);
          await seq.clearHistory();

          const m = (xs: Trace[], k: 'prefill' | 'decode' | 'decodeCpu') => median(xs.map((x) => rates(x, ids.length)[k]));
          const [sa, sb] = [medianStep(la, warm), medianStep(lb, warm)];
          const diff = firstDifference(a[0].ids, b[0].ids);
          const stable = a.every((x) => firstDifference(x.ids, a[0].ids) < 0) && b.every((x) => firstDifference(x.ids, b[0].ids) < 0);
          const label = `${f} / ${type}${threadCounts.length > 1 ? `, ${threads} thr.` : ''}`;
          rows.push([
            label,
            fmt(m(a, 'prefill')),
            fmt(m(b, 'prefill')),
            `${fmt(m(a, 'prefill') / m(b, 'prefill'), 2)}x`,
            fmt(m(a, 'decode'), 2),
            fmt(m(b, 'decode'), 2),
            `${fmt(m(a, 'decode') / m(b, 'decode'), 2)}x`,
            fmt(1000 / sa.wall, 2),
            fmt(1000 / sb.wall, 2),
            `${fmt(sb.wall / sa.wall, 2)}x`,
            fmt(rates(la, longIds.length).prefill),
            fmt(rates(lb, longIds.length).prefill),
            `${diff < 0 ? `all ${N}` : `first ${diff} of ${N}`}${stable ? '' : ' (runs differ)'}`,
          ]);
          const pct = (tokPerS: number, bytes: number) => `${fmt((100 * tokPerS * bytes) / bandwidth, 0)} %`;
          boundRows.push([label, fmt(oursStepBytes / 1e6, 0), pct(m(a, 'decode'), oursStepBytes), fmt(theirsStepBytes / 1e6, 0), pct(m(b, 'decode'), theirsStepBytes)]);
          cpuRows.push([label, fmt(m(a, 'decodeCpu'), 2), fmt(m(b, 'decodeCpu'), 2), `${fmt(m(b, 'decodeCpu') / m(a, 'decodeCpu'), 2)}x`, fmt(sa.cpu, 2), fmt(sb.cpu, 2), `${fmt(sb.cpu / sa.cpu, 2)}x`]);
        } finally {
          await ctx.dispose();
          await model.dispose();
          await ours.dispose();
        }
      }
    }
  } finally {
    await llama.dispose();
  }
  const c: LlamaConfig = config;
  const markdown = [
    `Model: the LLM stage bench's backbone (width ${c.hiddenSize}, ${c.numLayers} layers, GQA ${c.numHeads}/${c.numKvHeads} heads of ${c.headDim}, MLP ${c.intermediateSize}, vocabulary ${c.vocabSize}, seeded random weights), the same weights in both. llama.cpp = node-llama-cpp 3.21.1's prebuilt CPU build; ours = onnxruntime-node 1.30 CPU. ${threadCounts.join(' and ')} thread(s) each (onnxruntime intra_op_num_threads, llama.cpp context threads). Prompt ${P} tokens, ${N} greedy tokens, medians of ${reps} alternating runs after a warm-up (ours: LlamaModel.embed + prefill/step and argmax, what generate() runs per token; theirs: LlamaContextSequence.evaluate at temperature 0); ~4k context: a ${LONG}-token prefill each, then the median of ${steps} decode steps after ${warm}. KV cache: fp32 in ours; llama.cpp F32 in the fp32 row, its default F16 otherwise. Ratios are ours / llama.cpp (above 1: we are faster), measured side by side in one run on a shared 2-core machine.`,
    '',
    table(
      ['weights (ours / GGUF)', 'ours prefill tok/s', 'llama.cpp prefill tok/s', 'prefill ratio', 'ours decode tok/s', 'llama.cpp decode tok/s', 'decode ratio', `ours decode @${LONG} tok/s`, `llama.cpp decode @${LONG} tok/s`, `decode @${LONG} ratio`, `ours prefill ${LONG} tok/s`, `llama.cpp prefill ${LONG} tok/s`, 'same greedy tokens'],
      rows,
      [false, true, true, true, true, true, true, true, true, true, true, true, false],
    ),
    '',
    `CPU time per decoded token (this process's user + system time, both runtimes run in it): on a shared machine it counts the work, not the waits for a core; with one thread it is the fairest measure of the kernels, with more it also counts spinning threads.`,
    '',
    table(['weights (ours / GGUF)', 'ours CPU ms/token', 'llama.cpp CPU ms/token', 'ratio (theirs / ours)', `ours CPU ms/token @${LONG}`, `llama.cpp CPU ms/token @${LONG}`, `ratio @${LONG}`], cpuRows, [false, true, true, true, true, true, true]),
    '',
    `Decode against memory bandwidth: a step streams the decoder's weights once (the token table's row is gathered, not read whole), so tok/s x bytes per step / bandwidth is the share of the bound reached (goal >= 60 % at 8-bit and 4-bit). Bandwidth: onnxruntime's fp32 GEMV over 512 MB, ${fmt(bandwidth / 1e9, 1)} GB/s in this run.`,
    '',
    table(['weights (ours / GGUF)', 'ours MB per step', 'ours decode, % of bound', 'llama.cpp MB per step', 'llama.cpp decode, % of bound'], boundRows, [false, true, true, true, true]),
    '',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
  return { markdown, plots: [] };
}
