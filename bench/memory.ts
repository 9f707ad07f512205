/**
 * Table 2, memory per image and per video frame: the analytic KV-cache bytes one picture adds to the
 * LLM for both pipelines (at the paper's sizes), and the measured resident memory while a synthetic
 * video streams through a tiny LLaVA-Mini. The frames are generated (no ffmpeg) and fed through a
 * custom `resolveInput`; RSS is sampled from the progress callback as frames go through CLIP and
 * the compressor, then once more after pre-fusion and the LLM prefill of all frames' vision tokens.
 * The video runs in a child process so nothing else is counted.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlavaMini } from '@llava-mini/pipeline';
import { loadParts } from '@llava-mini/pipeline/node';
import { refLlamaConfig } from '@llava-mini/reference';
import { fmt, log, mb, now, ROOT, table } from './lib/common.js';
import { kvBytesPerToken, type LlmShape } from './lib/flops.js';
import { ensureModel, randomImage } from './lib/models.js';
import { lineChart, savePng } from './lib/plot.js';
import { LLAMA31_8B, VICUNA_7B, VIDEO_TINY } from './lib/shapes.js';

interface Sample {
  frames: number;
  rss: number;
  ms: number;
}

interface ChildResult {
  samples: Sample[];
  afterPrefill: { rss: number; ms: number };
  baseline: number;
  peak: number;
  peakDuring: { rss: number; phase: string };
  clipBytesPerFrame: number;
  tokenBytesPerFrame: number;
  kvBytesPerFrame: number;
  answerTokens: number;
  /** CPU time of the child (all its threads), so the parent's load report does not count it as other work. */
  cpuSeconds: number;
}

/** Runs in the child: one question about a `frames`-frame video, RSS sampled as frames progress. */
export async function videoChild(dir: string, frames: number): Promise<void> {
  const parts = await loadParts(dir, { device: 'cpu' });
  const model = new LlavaMini({
    ...parts,
    resolveInput: async () => ({
      kind: 'video',
      count: frames,
      frames: (async function* () {
        for (let i = 0; i < frames; i++) yield randomImage(i + 1);
      })(),
    }),
  });
  // Warm the sessions on a short video first, so arena growth is not counted as per-frame memory.
  const warm = new LlavaMini({ ...parts, resolveInput: async () => ({ kind: 'video', count: 16, frames: (async function* () { for (let i = 0; i < 16; i++) yield randomImage(1e6 + i); })() }) });
  await warm.ask('warm', 'Describe the video.', { maxNewTokens: 1 }).done();
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  const samples: Sample[] = [];
  // A timer catches transient peaks between progress events (onnxruntime runs off the main thread).
  let phase = 'frames';
  const peak = { rss: 0, phase: '' };
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss;
    if (rss > peak.rss) Object.assign(peak, { rss, phase });
  }, 5);
  const t0 = now();
  const every = Math.max(8, Math.floor(frames / 50));
  let next = 0;
  const result = await model
    .ask('video', 'What happens in this video?', {
      maxNewTokens: 1,
      onProgress: (e) => {
        if (e.task === 'video' && (e.done ?? 0) >= next) {
          samples.push({ frames: e.done ?? 0, rss: process.memoryUsage().rss, ms: now() - t0 });
          next = (e.done ?? 0) + every;
        }
        if (e.task === 'video' && e.done === frames) phase = 'pre-fusion, LLM prefill';
      },
    })
    .done();
  const afterPrefill = { rss: process.memoryUsage().rss, ms: now() - t0 };
  clearInterval(timer);
  const llm = refLlamaConfig(parts.config);
  const vc = parts.config.vision_config as Record<string, number>;
  const patches = (vc.image_size / vc.patch_size) ** 2;
  const out: ChildResult = {
    samples,
    afterPrefill,
    baseline,
    peak: process.resourceUsage().maxRSS * 1024,
    peakDuring: peak,
    clipBytesPerFrame: patches * vc.hidden_size * 4 + parts.vision.compressedTokens * vc.hidden_size * 4,
    tokenBytesPerFrame: parts.vision.compressedTokens * llm.hidden * 4,
    kvBytesPerFrame: parts.vision.compressedTokens * kvBytesPerToken(llm, 4),
    answerTokens: result.ids.length,
    cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  };
  process.stdout.write(`\n@@RESULT${JSON.stringify(out)}\n`);
  await parts.dispose();
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : Number.NaN;
}

export interface MemoryResult {
  markdown: string;
  plots: string[];
  childCpuSeconds: number;
}

export async function memory(quick: boolean, frames: number): Promise<MemoryResult> {
  const md: string[] = [];
  // Analytic: KV bytes one picture adds (fp16 cache), per pipeline.
  const rowsFor = (name: string, c: LlmShape) => {
    const perToken = kvBytesPerToken(c, 2);
    return [name, `${fmt(perToken / 1024, 0)} KiB`, mb(576 * perToken), mb(perToken, 2), fmt(576, 0), `${fmt((24e9 * 0.25) / perToken, 0)}`];
  };
  md.push('#### KV cache per picture (analytic, fp16 cache)');
  md.push('');
  md.push(
    table(
      ['LLM', 'KV bytes per token', 'LLaVA-v1.5: 576 tokens per picture', 'LLaVA-Mini: 1 token per picture', 'ratio', 'Mini frames per 6 GB of cache'],
      [rowsFor('Vicuna-7B (MHA 32x128, 32 layers; the paper\'s model)', VICUNA_7B), rowsFor('LLaMA-3.1-8B (GQA 8x128, 32 layers; the release)', LLAMA31_8B)],
      [false, true, true, true, true, true],
    ),
  );
  md.push('');
  md.push('The paper quotes about 360 MB per image for LLaVA-v1.5 and 0.6 MB for LLaVA-Mini (Vicuna-7B); per token, K and V in every layer: 2 x layers x KV heads x head_dim x 2 bytes.');
  md.push('');

  // Measured: a synthetic video through the tiny model, in a child process.
  const { converted } = await ensureModel('video-tiny', VIDEO_TINY, Math.max(4096, frames + 512));
  log(`memory: a ${frames}-frame synthetic video through the tiny model (child process)...`);
  const self = fileURLToPath(import.meta.url).replace(/memory\.js$/, 'run.js');
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['--expose-gc', self, '--video-child', converted, String(frames)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const childCpuSeconds = Number(process.hrtime.bigint() - started) / 1e9; // upper bound (wall); refined below when available
  const line = r.stdout?.split('\n').find((l) => l.startsWith('@@RESULT'));
  if (r.status !== 0 || !line) {
    md.push(`The video run failed: ${(r.stderr ?? '').slice(-2000)}`);
    return { markdown: md.join('\n'), plots: [], childCpuSeconds };
  }
  const c = JSON.parse(line.slice('@@RESULT'.length)) as ChildResult;
  const childCpu = c.cpuSeconds;
  const s = c.samples.filter((x) => x.frames > 0);
  const tail = s.slice(Math.floor(s.length / 5)); // past the first fifth: allocator warm-up is over
  const perFrame = slope(tail.map((x) => x.frames), tail.map((x) => x.rss));
  const last = s[s.length - 1];
  const fps = (1000 * (last.frames - s[0].frames)) / (last.ms - s[0].ms);
  md.push(`#### A ${frames}-frame synthetic video through the tiny LLaVA-Mini (measured)`);
  md.push('');
  md.push(`Tiny model: LLM width 64, 2 layers; CLIP width 32 over 576 patches; 1 vision token per frame; context ${Math.max(4096, frames + 512)} positions (KV cache preallocated at load). Frames are 336x336 RGB generated in JavaScript and fed through a custom \`resolveInput\`; one question, one answer token.`);
  md.push('');
  md.push(
    table(
      ['quantity', 'value'],
      [
        ['RSS after warm-up (baseline)', mb(c.baseline)],
        [`RSS after ${last.frames} frames streamed`, mb(last.rss)],
        ['RSS after pre-fusion and the LLM prefill of all frames', mb(c.afterPrefill.rss)],
        ['peak RSS of the process (loading and warm-up included)', mb(c.peak)],
        [`highest RSS seen during the question (${c.peakDuring.phase})`, mb(c.peakDuring.rss)],
        ['measured growth per frame (least-squares slope of RSS over frames)', `${fmt(perFrame / 1e3, 2)} KB`],
        ['what a frame must add: its vision token (C*C x H fp32)', `${fmt(c.tokenBytesPerFrame / 1e3, 2)} KB`],
        ['its KV rows (in the cache preallocated at load, so no growth)', `${fmt(c.kvBytesPerFrame / 1e3, 2)} KB`],
        ['its CLIP features + compressed feature, were they kept (576 x D fp32)', `${fmt(c.clipBytesPerFrame / 1e3, 1)} KB`],
        ['frames per second while streaming (every stage the pipeline runs per frame)', fmt(fps, 1)],
        ['whole question (frames, pre-fusion, prefill, 1 token)', `${fmt(c.afterPrefill.ms / 1000, 1)} s`],
      ],
      [false, true],
    ),
  );
  md.push('');
  const keepsFeatures = perFrame > 0.5 * c.clipBytesPerFrame;
  md.push(
    keepsFeatures
      ? `Memory grows by ${fmt(perFrame / 1e3, 1)} KB per frame, ${fmt(perFrame / c.clipBytesPerFrame, 2)}x each frame's CLIP features: the pipeline keeps every frame's features until pre-fusion runs. At the release's width (D = 1024, fp32) that would be 2.4 MB per frame, 23.6 GB for 10,000 frames, far above the 0.6 MB of vision token + KV cache the paper counts.`
      : `Memory grows by ${fmt(perFrame / 1e3, 2)} KB per frame (${fmt((perFrame * last.frames) / 1e6, 0)} MB over ${last.frames} frames): ${fmt(perFrame / c.tokenBytesPerFrame, 1)}x the frame's vision token (${fmt(c.tokenBytesPerFrame / 1e3, 2)} KB) and ${fmt((100 * perFrame) / c.clipBytesPerFrame, 1)} % of what keeping its CLIP features would cost (${fmt(c.clipBytesPerFrame / 1e3, 1)} KB here, 2.4 MB at the release's width): no frame's features outlive its batch, and its KV rows were reserved with the cache at load. The rest above the token is not attributed here. At the release's sizes a frame then costs its vision token (16 KB fp32) and KV (128 KiB fp16): 10,000 frames in about 1.5 GB beside the weights.`,
  );
  const file = path.join(ROOT, 'bench', 'plots', 'video-memory.png');
  await savePng(
    lineChart({
      title: `RSS while a ${frames}-frame video streams through the tiny model`,
      categories: s.map((x) => String(x.frames)),
      series: [
        { name: 'RSS (MB)', values: s.map((x) => x.rss / 1e6) },
        { name: 'baseline + vision tokens (MB)', values: s.map((x) => (c.baseline + x.frames * c.tokenBytesPerFrame) / 1e6) },
        { name: 'baseline + CLIP features, were they kept (MB)', values: s.map((x) => (c.baseline + x.frames * c.clipBytesPerFrame) / 1e6) },
      ],
      yLabel: 'MB',
      xLabel: 'frames',
    }),
    file,
  );
  return { markdown: md.join('\n'), plots: [file], childCpuSeconds: childCpu };
}
