/**
 * The release's shapes end to end (`npm run bench -- --only=release`): LLaMA-3.1-8B + 4 pre-fusion
 * layers + CLIP ViT-L/14-336 with seeded random weights in the release layout (bf16 LLM side, fp32
 * CLIP, four shards), written by the tiny generator, converted to q4 and q8, loaded, asked one image
 * question and one 60-frame video question. Each step runs in its own child process, so its time and
 * peak RSS are its own. Beside each figure its bound: decode against memory bandwidth / bytes read
 * per token, prefill against the measured peak MatMul rate.
 *
 * It needs tens of GB of disk (checked before anything is written, against an estimate from the
 * shapes) and most of an hour on 2 cores; everything goes to one work folder, removed at the end
 * (`--keep` leaves it). `--scale=small` runs the same steps on a scaled-down shape in a few minutes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeBackend } from '@llava-mini/core/node';
import { GRAPH_FILES, LlavaMini } from '@llava-mini/pipeline';
import { convertCheckpoint, loadParts } from '@llava-mini/pipeline/node';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import { CACHE, decoderStepBytes, fmt, log, now, table } from './lib/common.js';
import { gemvBandwidth, matmulRate } from './hardware.js';
import { randomImage } from './lib/models.js';
import { RELEASE, RELEASE_SMALL } from './lib/shapes.js';
import { llamaCppQuestions, PATCH_ROWS, type VersusResult, type VersusRows, versusTable, writeReleaseGguf } from './versus.js';

const CONTEXT = 4096;
const SELF = fileURLToPath(import.meta.url);

/** Parameters of the LLM side (LLM + pre-fusion) and of CLIP, from the shapes. */
function params(o: TinyOptions): { llm: number; layer: number; head: number; embed: number; prefusion: number; clip: number } {
  const H = o.hiddenSize as number;
  const I = o.intermediateSize as number;
  const hd = H / (o.numAttentionHeads as number);
  const kv = (o.numKeyValueHeads as number) * hd;
  const layer = 2 * H * H + 2 * H * kv + 3 * H * I + 2 * H;
  const V = 128256;
  const C = o.visionHiddenSize as number;
  const clip = (o.visionLayers as number) * (4 * C * C + 2 * C * (o.visionIntermediateSize as number)) + 577 * C + 14 * 14 * 3 * C;
  return { llm: (o.numHiddenLayers as number) * layer, layer, head: V * H, embed: V * H, prefusion: (o.prefusionLayers as number) * layer + C * H + H * H, clip };
}

function dirBytes(dir: string): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? dirBytes(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).size), 0);
}

const gb = (b: number): string => `${fmt(b / 1e9, 2)} GB`;

let running: ChildProcess | undefined;

/** One step in a child process (`--release-child step json`); returns what it printed as @@RESULT. */
async function child<T>(step: string, args: Record<string, unknown>): Promise<T> {
  log(`release: ${step}...`);
  const cp = spawn(process.execPath, [SELF, '--release-child', step, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
  running = cp;
  let stdout = '';
  cp.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => cp.on('close', (c, s) => resolve([c, s])));
  running = undefined;
  const line = stdout.split('\n').find((l) => l.startsWith('@@RESULT'));
  if (code !== 0 || !line) throw new Error(`release step ${step} failed (exit ${code}, signal ${signal})`);
  return JSON.parse(line.slice('@@RESULT'.length)) as T;
}

interface Answer {
  loadSeconds: number;
  rssAfterLoad: number;
  image: { ttft: number; inputMs: number; encoderMs: number; compressorMs: number; prefusionMs: number; embedMs: number; prefillMs: number; decode: number; tokens: number; rows: number };
  /** With --versus: a follow-up in the image question's conversation. */
  followUp?: { ttft: number; rows: number };
  video?: { ttft: number; encoderMs: number; compressorMs: number; prefusionMs: number; decode: number; tokens: number; rows: number; totalMs: number };
  peakRssAnswering: number;
  peakRss: number;
}

/** The child's side of each step. */
export async function releaseChild(step: string, json: string): Promise<void> {
  const a = JSON.parse(json) as { hf: string; out: string; options: TinyOptions; dtype: 'q4' | 'q8'; videoFrames: number; followUp: boolean; gguf: string; rows: VersusRows; vocab: number };
  const t0 = now();
  let result: unknown;
  if (step === 'write') {
    await writeTinyCheckpoint(a.hf, a.options);
    const index = path.join(a.hf, 'model.safetensors.index.json');
    const names = fs.existsSync(index) ? Object.keys(JSON.parse(fs.readFileSync(index, 'utf8')).weight_map).length : 0;
    result = { seconds: (now() - t0) / 1000, bytes: dirBytes(a.hf), shards: fs.readdirSync(a.hf).filter((f) => f.endsWith('.safetensors')).length, names };
  } else if (step === 'convert') {
    await convertCheckpoint(a.hf, a.out, { dtype: a.dtype, contextLength: CONTEXT, force: true });
    result = { seconds: (now() - t0) / 1000, bytes: dirBytes(a.out), peakRss: process.resourceUsage().maxRSS * 1024 };
  } else if (step === 'answer') {
    const parts = await loadParts(a.out, { device: 'cpu' });
    const loadSeconds = (now() - t0) / 1000;
    const rssAfterLoad = process.memoryUsage().rss;
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const model = new LlavaMini({
      ...parts,
      resolveInput: async (input: unknown) =>
        input === 'video'
          ? { kind: 'video', count: a.videoFrames, frames: (async function* () { for (let i = 0; i < a.videoFrames; i++) yield randomImage(100 + i); })() }
          : { kind: 'images', images: [randomImage(1)] },
    } as never);
    const chat = model.chat('image');
    const img = await chat.ask('What is shown in this picture? Describe the scene in detail.', { maxNewTokens: 16 }).done();
    const it = img.timings;
    const fu = a.followUp ? await chat.ask('And what colour is the largest object?', { maxNewTokens: 4 }).done() : undefined;
    // --video-frames=0 skips the video question (its pre-fusion over every frame is most of the run).
    const vid = a.videoFrames > 0 ? await model.ask('video', 'What happens in this video?', { maxNewTokens: 8 }).done() : undefined;
    const vt = vid?.timings;
    clearInterval(timer);
    const prefillMs = it.timeToFirstTokenMs - it.inputMs - it.encoderMs - it.compressorMs - it.prefusionMs - it.embedMs;
    result = {
      loadSeconds,
      rssAfterLoad,
      image: { ttft: it.timeToFirstTokenMs, inputMs: it.inputMs, encoderMs: it.encoderMs, compressorMs: it.compressorMs, prefusionMs: it.prefusionMs, embedMs: it.embedMs, prefillMs, decode: it.decodeTokensPerSecond, tokens: img.ids.length, rows: img.llmInputTokens },
      followUp: fu && { ttft: fu.timings.timeToFirstTokenMs, rows: fu.llmInputTokens },
      video: vid && vt ? { ttft: vt.timeToFirstTokenMs, encoderMs: vt.encoderMs, compressorMs: vt.compressorMs, prefusionMs: vt.prefusionMs, decode: vt.decodeTokensPerSecond, tokens: vid.ids.length, rows: vid.llmInputTokens, totalMs: vt.totalMs } : undefined,
      peakRssAnswering: peak,
      peakRss: process.resourceUsage().maxRSS * 1024,
    } satisfies Answer;
    await parts.dispose();
  } else if (step === 'gguf') {
    result = writeReleaseGguf(a.hf, a.gguf);
  } else if (step === 'llamacpp') {
    result = await llamaCppQuestions(a.gguf, a.rows, a.vocab);
  } else {
    throw new Error(`unknown release step ${step}`);
  }
  process.stdout.write(`\n@@RESULT${JSON.stringify(result)}\n`);
}

export interface ReleaseOptions {
  scale: 'full' | 'small';
  keep: boolean;
  dtypes: ('q4' | 'q8')[];
  /** Frames of the video question (0: no video question). */
  videoFrames: number;
  /** Also ask llama.cpp the same questions LLaVA-1.5 style, on the same LLM at Q4_0 (issue 25). */
  versus: boolean;
}

export async function release(o: ReleaseOptions): Promise<{ markdown: string; plots: string[] }> {
  if (o.versus && (!o.dtypes.includes('q4') || o.videoFrames === 0)) throw new Error('--versus compares the q4 model and asks a video question: keep q4 in --dtypes and --video-frames above 0');
  const options: TinyOptions = o.scale === 'full' ? RELEASE : RELEASE_SMALL;
  const work = path.join(CACHE, `release-${o.scale}`);
  const p = params(options);
  // Disk: the bf16/fp32 checkpoint, plus one converted model at a time (deleted before the next), plus 10 %.
  const checkpointBytes = 2 * (p.llm + p.embed + p.head + p.prefusion) + 4 * p.clip;
  const convertedBytes = (p.llm + p.head + p.embed + p.prefusion) * (o.dtypes.includes('q8') ? 1.13 : 0.63) + 4 * p.clip; // blocks of 32 with fp32 scales; CLIP stays fp32
  const ggufBytes = o.versus ? (p.llm + p.embed + p.head) * (18 / 32) : 0; // Q4_0: 18 bytes per block of 32
  const need = 1.1 * (checkpointBytes + convertedBytes + ggufBytes);
  fs.mkdirSync(CACHE, { recursive: true });
  const st = fs.statfsSync(CACHE);
  const free = st.bavail * st.bsize;
  const head = `Shapes: LLM width ${options.hiddenSize}, ${options.numHiddenLayers} layers, GQA ${options.numAttentionHeads}/${options.numKeyValueHeads}, MLP ${options.intermediateSize}, vocabulary ${o.scale === 'full' ? '128256 (Llama-3.1)' : "the tiny generator's"}; ${options.prefusionLayers} pre-fusion layers; CLIP width ${options.visionHiddenSize}, ${options.visionLayers} layers (${o.scale === 'full' ? 'the release' : 'scaled down with --scale=small; not the release'}). Disk: needs about ${gb(need)} under ${CACHE}, ${gb(free)} free.`;
  if (free < need) return { markdown: `${head}\n\nNot run: not enough free disk (free ${gb(free)} of the ${gb(need)} needed). Free some space or point the cache elsewhere.`, plots: [] };

  // Bounds measured in this run: bandwidth (onnxruntime's fp32 GEMV over 512 MB) and the peak fp32 MatMul.
  const backend = await nodeBackend();
  const bandwidth = await gemvBandwidth(backend, 512 * 2 ** 20, 3);
  const peak = await matmulRate(backend, 'cpu', [512, options.hiddenSize as number, options.intermediateSize as number], 3);

  const hf = path.join(work, 'hf');
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  const versus: string[] = [];
  // Interrupted (Ctrl-C, a timeout's SIGTERM): the running step ends and the work folder goes too.
  const onSignal = (signal: NodeJS.Signals) => {
    running?.kill('SIGKILL');
    if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
    process.kill(process.pid, signal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    fs.rmSync(work, { recursive: true, force: true });
    const w = await child<{ seconds: number; bytes: number; shards: number; names: number }>('write', { hf, options });
    notes.push(`Checkpoint: ${gb(w.bytes)} in ${w.shards} shards, ${w.names} tensor names, written in ${fmt(w.seconds)} s.`);
    for (const dtype of o.dtypes) {
      const out = path.join(work, dtype);
      const c = await child<{ seconds: number; bytes: number; peakRss: number }>('convert', { hf, out, dtype });
      const a = await child<Answer>('answer', { out, videoFrames: o.videoFrames, followUp: o.versus });
      if (o.versus && dtype === 'q4') versus.push(await versusSection(a, hf, path.join(work, 'llm-q4_0.gguf'), o.videoFrames, options));
      const stepBytes = decoderStepBytes({ model: path.join(out, GRAPH_FILES.llm), embeddings: path.join(out, GRAPH_FILES.embeddings) });
      const bound = bandwidth / stepBytes;
      const prefillFlops = 2 * p.llm; // per token, the lm_head excluded (only the last row's logits)
      const prefillRate = (a.image.rows * prefillFlops) / (a.image.prefillMs / 1000);
      rows.push(
        [dtype, 'convert: time / peak RSS / output', `${fmt(c.seconds)} s / ${gb(c.peakRss)} / ${gb(c.bytes)}`, ''],
        [dtype, 'load: time / RSS after', `${fmt(a.loadSeconds, 1)} s / ${gb(a.rssAfterLoad)}`, ''],
        [dtype, `image question: TTFT (input / CLIP / compressor / pre-fusion / embed / LLM prefill of ${a.image.rows} rows), ms`, `${fmt(a.image.ttft, 0)} (${[a.image.inputMs, a.image.encoderMs, a.image.compressorMs, a.image.prefusionMs, a.image.embedMs, a.image.prefillMs].map((x) => fmt(x, 0)).join(' / ')})`, `prefill ${fmt(prefillRate / 1e9, 0)} GFLOP/s = ${fmt((100 * prefillRate) / peak, 0)} % of the fp32 MatMul peak ${fmt(peak / 1e9, 0)} GFLOP/s`],
        [dtype, `image question: decode tok/s (${a.image.tokens} tokens)`, fmt(a.image.decode, 2), `bound ${fmt(bound, 2)} tok/s (${fmt(bandwidth / 1e9, 1)} GB/s / ${gb(stepBytes)} per token): ${fmt((100 * a.image.decode) / bound, 0)} %`],
      );
      const v = a.video;
      if (v) {
        const frames = o.videoFrames;
        rows.push(
          [dtype, `${frames}-frame video: TTFT (CLIP / compressor / pre-fusion), ms; ${v.rows} LLM rows`, `${fmt(v.ttft, 0)} (${[v.encoderMs, v.compressorMs, v.prefusionMs].map((x) => fmt(x, 0)).join(' / ')})`, `${fmt(v.encoderMs / frames, 0)} ms of CLIP per frame`],
          [dtype, `${frames}-frame video: decode tok/s (${v.tokens} tokens)`, fmt(v.decode, 2), `${fmt((100 * v.decode) / bound, 0)} % of the bound`],
        );
      }
      rows.push(
        [dtype, 'RSS: highest while answering / peak of the process', `${gb(a.peakRssAnswering)} / ${gb(a.peakRss)}`, `weights on disk ${gb(c.bytes)}`],
      );
      if (!o.keep) fs.rmSync(out, { recursive: true, force: true });
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!o.keep) fs.rmSync(work, { recursive: true, force: true });
  }
  const markdown = [
    head,
    '',
    `Each step in its own process (its peak RSS is its own); bounds measured in this run: onnxruntime's fp32 GEMV read ${fmt(bandwidth / 1e9, 1)} GB/s, fp32 MatMul peak ${fmt(peak / 1e9, 0)} GFLOP/s at 512 x ${options.hiddenSize} x ${options.intermediateSize}. Prefill FLOPs: 2 x the LLM's layer parameters per row. q8/q4 prefill runs int8 kernels, whose peak is not the fp32 one (for scale only).`,
    '',
    table(['weights', 'what', 'measured', 'against the bound'], rows, [false, false, true, false]),
    '',
    ...notes.map((n) => `- ${n}`),
    `- The work folder ${o.keep ? `was kept: ${work}` : 'was removed after the run'}.`,
    ...versus,
  ].join('\n');
  return { markdown, plots: [] };
}

/** llama.cpp asked the same questions as the q4 answer step `a`, LLaVA-1.5 style, on the same LLM. */
async function versusSection(a: Answer, hf: string, gguf: string, frames: number, options: TinyOptions): Promise<string> {
  if (!a.video || !a.followUp) throw new Error('the video question or the follow-up was not asked');
  const g = await child<{ seconds: number; bytes: number }>('gguf', { hf, gguf });
  // Their rows: our text rows (each question's rows less one per picture) plus 576 per picture.
  const rows: VersusRows = { image: a.image.rows - 1 + PATCH_ROWS, followUp: a.followUp.rows, video: a.video.rows - frames + frames * PATCH_ROWS };
  const vocab = (JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  const theirs = await child<VersusResult>('llamacpp', { gguf, rows, vocab });
  fs.rmSync(gguf, { force: true });
  const ours = {
    image: { ttft: a.image.ttft, encoderMs: a.image.encoderMs, rows: a.image.rows, decode: a.image.decode, tokens: a.image.tokens },
    followUp: { ttft: a.followUp.ttft, rows: a.followUp.rows },
    video: { ttft: a.video.ttft, encoderMs: a.video.encoderMs, rows: a.video.rows },
    peakRss: a.peakRssAnswering,
  };
  return [
    '',
    `**Against llama.cpp, LLaVA-1.5 style (issue 25).** The same LLM (these shapes, the same random weights) as a Q4_0 GGUF (${fmt(g.bytes / 1e9, 2)} GB, written in ${fmt(g.seconds, 0)} s) in node-llama-cpp 3.21.1's CPU build, ${os.cpus().length} threads, loaded in ${fmt(theirs.loadSeconds, 1)} s; ours the q4 folder above. Each picture is 576 rows of its prompt, which go through all ${options.numHiddenLayers} layers; its CLIP time is ours (the same encoder). Times to the first token, one run each, in one sitting.`,
    '',
    versusTable(ours, theirs, rows, frames, { llm: options.numHiddenLayers as number, prefusion: options.prefusionLayers as number }),
  ].join('\n');
}
