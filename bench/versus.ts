/**
 * The comparison a user of local vision models makes (issue 25, item 4), as release-bench steps:
 * the same LLM at the release's shapes in llama.cpp (node-llama-cpp, Q4_0), asked as a
 * LLaVA-1.5-style model asks it: every picture spliced in as 576 rows, each through the whole LLM.
 *
 * The picture rows are token ids here (llama.cpp's multimodal path hands it embeddings instead,
 * which cost the same per row), and CLIP is not run by llama.cpp: its time to the first token is
 * our CLIP time plus its own prefill, so both count the same encoder.
 */
import * as os from 'node:os';
import { fmt, now, table } from './lib/common.js';
import { writeLlamaGguf } from './lib/gguf-llama.js';
import { loadNodeLlamaCpp } from './llamacpp.js';

/** Rows a LLaVA-1.5-style model gives the LLM per picture (24 x 24 CLIP patches at 336 px). */
export const PATCH_ROWS = 576;

export interface VersusRows {
  /** The image question: its text rows plus one picture. */
  image: number;
  /** The follow-up's text rows (the picture and first answer stay cached). */
  followUp: number;
  /** The video question: its text rows plus one picture per frame. */
  video: number;
}

export interface VersusResult {
  loadSeconds: number;
  /** Prefill to the first token, ms. */
  image: number;
  followUp: number;
  video: number;
  /** Decode tok/s after the image question (up to 8 tokens). */
  decode: number;
  peakRss: number;
}

/** The child step writing the LLM's Q4_0 GGUF from the release checkpoint (its pre-fusion and CLIP tensors left out). */
export function writeReleaseGguf(hf: string, file: string): { seconds: number; bytes: number } {
  const t = now();
  const bytes = writeLlamaGguf(hf, file, 'Q4_0');
  return { seconds: (now() - t) / 1000, bytes };
}

/** The child step timing llama.cpp's three prefills on `file`, in one process of its own (its RSS is its own). */
export async function llamaCppQuestions(file: string, rows: VersusRows, vocab: number): Promise<VersusResult> {
  const t0 = now();
  const lib = await loadNodeLlamaCpp();
  const llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const threads = os.cpus().length;
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: rows.video + 64, batchSize: 512, threads: { ideal: threads, min: threads } });
  const seq = ctx.getSequence();
  const loadSeconds = (now() - t0) / 1000;
  const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => ((i + seed) * 7919 + 13) % vocab);
  /** ms to the first token of `tokens` appended to the sequence, then the rate of up to `n` more. */
  const ask = async (tokens: number[], n: number): Promise<{ ttft: number; rate: number }> => {
    const t = now();
    let first = 0;
    let count = 0;
    for await (const _ of seq.evaluate(tokens, { temperature: 0 })) {
      if (count === 0) first = now() - t;
      if (++count > n) break;
    }
    if (count === 0) throw new Error(`llama.cpp gave no token after ${tokens.length} prompt tokens`);
    return { ttft: first, rate: (count - 1) / ((now() - t - first) / 1000) };
  };
  try {
    await ask(ids(16, 1), 2); // warm-up: weights paged in
    await seq.clearHistory();
    const image = await ask(ids(rows.image, 2), 8);
    const followUp = await ask(ids(rows.followUp, 3), 1);
    await seq.clearHistory();
    const video = await ask(ids(rows.video, 4), 1);
    return { loadSeconds, image: image.ttft, followUp: followUp.ttft, video: video.ttft, decode: image.rate, peakRss: process.resourceUsage().maxRSS * 1024 };
  } finally {
    await ctx.dispose();
    await model.dispose();
    await llama.dispose();
  }
}

export interface OursQuestions {
  image: { ttft: number; encoderMs: number; rows: number; decode: number; tokens: number };
  followUp: { ttft: number; rows: number };
  video: { ttft: number; encoderMs: number; rows: number };
  peakRss: number;
}

/**
 * The table: each question's time to the first token both ways, and what FLOPs predict. A
 * LLaVA-1.5-style prompt runs every row through the 32 layers; ours runs the text and pictures
 * through the pre-fusion layers and then one row per picture plus the text through the 32.
 */
export function versusTable(o: OursQuestions, theirs: VersusResult, rows: VersusRows, frames: number, layers: { llm: number; prefusion: number }): string {
  const gb = (b: number) => `${fmt(b / 1e9, 2)} GB`;
  // LLM-side work in layer-rows (each layer-row ~ the same FLOPs); CLIP is the same for both.
  const oursWork = (llmRows: number, prefusionRows: number) => layers.llm * llmRows + layers.prefusion * prefusionRows;
  const line = (what: string, ours: number, clip: number, theirsPrefill: number, theirsRows: number, predicted: number) => [
    what,
    fmt(ours, 0),
    `${fmt(clip + theirsPrefill, 0)} (${fmt(clip, 0)} + ${fmt(theirsPrefill, 0)} for ${theirsRows} rows)`,
    `${fmt((clip + theirsPrefill) / ours, 2)}x`,
    `${fmt(predicted, 2)}x`,
  ];
  const imagePrefusion = rows.image; // pre-fusion reads the text and the picture's patches once more
  const predictedImage = (layers.llm * rows.image) / oursWork(o.image.rows, imagePrefusion);
  const videoText = rows.video - frames * PATCH_ROWS;
  const predictedVideo = (layers.llm * rows.video) / oursWork(o.video.rows, frames * (PATCH_ROWS + videoText)); // each frame pre-fused with the text
  const predictedFollowUp = (layers.llm * rows.followUp) / oursWork(o.followUp.rows, o.followUp.rows);
  return [
    table(
      ['question', 'ours: TTFT ms', 'llama.cpp, LLaVA-1.5 style: TTFT ms (our CLIP + its prefill)', 'speed-up (theirs / ours)', 'predicted by LLM-side FLOPs'],
      [
        line(`image question (ours: ${o.image.rows} LLM rows)`, o.image.ttft, o.image.encoderMs, theirs.image, rows.image, predictedImage),
        line(`follow-up (${o.followUp.rows} new rows both)`, o.followUp.ttft, 0, theirs.followUp, rows.followUp, predictedFollowUp),
        line(`${frames}-frame video (ours: ${o.video.rows} LLM rows)`, o.video.ttft, o.video.encoderMs, theirs.video, rows.video, predictedVideo),
      ],
      [false, true, true, true, true],
    ),
    '',
    table(
      ['', 'ours', 'llama.cpp'],
      [
        [`decode tok/s after the image question (ours over ${o.image.tokens} tokens, llama.cpp's over up to 8)`, fmt(o.image.decode, 2), fmt(theirs.decode, 2)],
        ['peak RSS: ours while answering, llama.cpp its process', gb(o.peakRss), `${gb(theirs.peakRss)} (no CLIP loaded)`],
      ],
      [false, true, true],
    ),
  ].join('\n');
}
