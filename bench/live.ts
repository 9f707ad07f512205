/**
 * Live streams (issue 23): how fast a live stream takes frames in (each encoded on arrival: CLIP,
 * the compressor, its own pre-fusion rows), what a question costs against the window's size, and
 * what a frame keeps, side by side with the same question asked about the same frames from nothing
 * (`model.ask({ frames })`, the video mode: every frame encoded at the question).
 *
 *   npm run bench -- live                          the demo model and the mid model, windows of 10, 60 and 600 frames
 *   npm run bench -- live --quick                  windows of 10 and 60 frames
 *   npm run bench -- live --models=demo,mid,release   adds the release's vision side: ingest seconds and
 *                                                  bytes per frame, a follow-up against a first question
 *   --record writes bench/RESULTS.md's "Live streams" section
 *
 * Frames are 336x336 pictures made in JavaScript and pushed with `follow(..., { wait: true })`, so
 * ingest is the encoder's own rate (no decoder, nothing dropped). The picture cache is off, so the
 * from-nothing question encodes every frame as a first look would. Live and from-nothing answers
 * must give the same tokens; the bench checks it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TimedFrame } from '@llava-mini/encoder';
import { convertCheckpoint, DEFAULT_LIVE_BYTES, defaultModelDir, LlavaMini } from '@llava-mini/pipeline/node';
import type { TinyOptions } from '@llava-mini/tiny';
import { benchCommand, flag, fmt, listOption, LoadMeter, log, machine, mb, now, RESULTS, replaceMarked, table } from './lib/common.js';
import { ensureModel, randomImage } from './lib/models.js';
import { HEADLINE_LARGE, RELEASE } from './lib/shapes.js';

const WINDOWS = flag('quick') ? [10, 60] : [10, 60, 600];
const MODELS = listOption('models', ['demo', 'mid']);
const QUESTION = 'What is happening in the stream now?';
const TOKENS = 4;
const meter = new LoadMeter();

/** The release's vision side (CLIP ViT-L/14-336, 4 pre-fusion layers at width 4096) under one LLM layer and the tiny tokenizer: a frame's work and bytes are the release's; the LLM's are not measured here. */
const RELEASE_VISION_SIDE = { ...RELEASE, numHiddenLayers: 1, tokenizer: 'tiny', maxShardBytes: 2e9 } satisfies TinyOptions;

async function* frames(count: number, seed: number): AsyncGenerator<TimedFrame> {
  for (let i = 0; i < count; i++) yield { ...randomImage(seed + i + 1), time: i };
}

interface WindowRow {
  frames: number;
  ingestFps: number;
  encodeMs: number;
  liveTtft: number;
  scratchTtft: number;
  bytesPerFrame: number;
}

async function windows(model: LlavaMini, seed: number): Promise<WindowRow[]> {
  const rows: WindowRow[] = [];
  for (const W of WINDOWS) {
    log(`  window of ${W} frames...`);
    const live = model.live({ windowSeconds: W, maxBytes: 2 ** 40 });
    const t = now();
    await live.follow(frames(W, seed + W * 1000), { wait: true });
    const ingestMs = now() - t;
    const { encoded, encodeMs } = live.stats;
    const got = await live.ask(QUESTION, { maxNewTokens: TOKENS }).done();
    const frameList: TimedFrame[] = [];
    for await (const f of frames(W, seed + W * 1000)) frameList.push(f);
    const scratch = await model.ask({ frames: frameList }, QUESTION, { maxNewTokens: TOKENS }).done();
    if (got.ids.join() !== scratch.ids.join()) throw new Error(`window ${W}: the live answer differs from the video mode's on the same frames`);
    rows.push({ frames: W, ingestFps: (encoded * 1000) / ingestMs, encodeMs: encodeMs / encoded, liveTtft: got.timings.timeToFirstTokenMs, scratchTtft: scratch.timings.timeToFirstTokenMs, bytesPerFrame: live.window.bytes / live.window.frames });
    live.dispose();
  }
  return rows;
}

function windowTable(rows: WindowRow[]): string {
  return table(
    ['window (frames)', 'ingest frames/s', 'encode ms/frame', 'question TTFT ms (live)', 'same question from nothing, ms', 'live / from nothing', 'kept per frame'],
    rows.map((r) => [r.frames, fmt(r.ingestFps, 2), fmt(r.encodeMs), fmt(r.liveTtft), fmt(r.scratchTtft), fmt(r.liveTtft / r.scratchTtft, 3), mb(r.bytesPerFrame, 2)]),
  );
}

interface ReleaseRow {
  ingestS: number;
  bytes: number;
  firstMs: number;
  followMs: number;
}

/** One conversion of the release's vision side: seconds to take a frame in, bytes it keeps, and a follow-up against a first question over 8 frames. */
async function releaseRow(dir: string): Promise<ReleaseRow> {
  const model = await LlavaMini.fromPretrained(dir, { device: 'cpu', pictureCacheBytes: 0 });
  try {
    const live = model.live({ maxBytes: 2 ** 40 });
    const t = now();
    await live.follow(frames(4, 90_000), { wait: true });
    const ingestS = (now() - t) / 4000;
    const bytes = live.window.bytes / live.window.frames;
    live.dispose();
    const list: TimedFrame[] = [];
    for await (const f of frames(8, 91_000)) list.push(f);
    const chat = model.chat({ frames: list });
    const first = await chat.ask(QUESTION, { maxNewTokens: TOKENS }).done();
    const follow = await chat.ask('And what colour is the last thing you saw?', { maxNewTokens: TOKENS }).done();
    chat.dispose();
    return { ingestS, bytes, firstMs: first.timings.timeToFirstTokenMs, followMs: follow.timings.timeToFirstTokenMs };
  } finally {
    await model.dispose();
  }
}

/** The release's vision side in fp32 and q4 (what a CPU user runs), side by side. */
async function release(): Promise<string> {
  log('release vision side (CLIP ViT-L/14-336, 4 pre-fusion layers at 4096)...');
  const { hf, converted } = await ensureModel('release-vision-side', RELEASE_VISION_SIDE, 4096);
  const q4 = path.join(path.dirname(converted), 'onnx-q4');
  if (!fs.existsSync(path.join(q4, 'manifest.json'))) await convertCheckpoint(hf, q4, { dtype: 'q4', contextLength: 4096, force: true });
  const rows = [await releaseRow(converted), await releaseRow(q4)];
  const both = (f: (r: ReleaseRow) => string) => rows.map(f);
  return [
    "The release's vision side (CLIP ViT-L/14-336, 4 pre-fusion layers at width 4096, GQA 32/8; seeded random weights) under one LLM layer: what a frame costs and keeps is the release's; the other 31 LLM layers are not in these times.",
    '',
    table(
      ['measure', 'fp32', 'q4'],
      [
        ['ingest, seconds per frame (CLIP + compressor + the frame\'s pre-fusion rows)', ...both((r) => fmt(r.ingestS, 2))],
        ['kept per frame (vision token + 4 layers of keys and values over 577 rows)', ...both((r) => mb(r.bytes, 2))],
        [`frames the default window budget (${DEFAULT_LIVE_BYTES / 2 ** 30} GiB) holds`, ...both((r) => String(Math.floor(DEFAULT_LIVE_BYTES / r.bytes)))],
        ['8-frame video: first question TTFT, ms', ...both((r) => fmt(r.firstMs))],
        ['8-frame video: follow-up TTFT, ms (its text rows only, per frame)', ...both((r) => fmt(r.followMs))],
        ['follow-up / first', ...both((r) => fmt(r.followMs / r.firstMs, 3))],
      ],
      [false, true, true],
    ),
  ].join('\n');
}

/** The window rows of one model. */
async function measure(dir: string, seed: number): Promise<WindowRow[]> {
  log(`${dir}...`);
  const model = await LlavaMini.fromPretrained(dir, { device: 'cpu', pictureCacheBytes: 0 });
  try {
    return await windows(model, seed);
  } finally {
    await model.dispose();
  }
}

async function main(): Promise<void> {
  const demoRows = MODELS.includes('demo') ? await measure(defaultModelDir(), 1) : undefined;
  const midRows = MODELS.includes('mid') ? await measure((await ensureModel('headline-large', HEADLINE_LARGE, 4096)).converted, 2) : undefined;
  const releaseSection = MODELS.includes('release') ? await release() : undefined;

  const md = [
    '## Live streams (issue 23)',
    '',
    `\`${benchCommand('live')}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}; ${meter.report()}.`,
    `Frames made in JavaScript (336x336) pushed as fast as the encoder takes them (nothing dropped), then one question (${TOKENS} answer tokens) about the whole window, beside the same question about the same frames from nothing (\`model.ask({ frames })\`: every frame encoded at the question, the picture cache off). Live and from-nothing gave the same tokens in every row. fp32, onnxruntime-node CPU.`,
    '',
    ...(demoRows ? ['The demo model (models/llava-mini-shapes: LLM width 128, CLIP width 96):', '', windowTable(demoRows), ''] : []),
    ...(midRows ? ["The mid model (the headline's large LLaVA-Mini: width 1024, 16 layers, 2 pre-fusion layers, CLIP 256 wide, 6 blocks; random weights):", '', windowTable(midRows), ''] : []),
    ...(releaseSection ? [releaseSection] : []),
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (flag('record')) replaceMarked(RESULTS, 'live', md);
}

await main();
