/**
 * The one way to run benches: `npm run bench` (builds the packages and this folder, then runs this).
 *
 *   npm run bench -- NAME [options]    one bench that is a program of its own (PROGRAMS below), or
 *                                      `stages` for the four that packages own, one after another
 *   npm run bench [-- options]         the suite (issue 6): five tables, printed and written to
 *                                      bench/RESULTS.md (between the `suite` markers; other benches'
 *                                      sections stay) with plots under bench/plots/
 *
 * Suite options: --quick (a few minutes on 2 cores once the cached models exist)
 *   --only=headline,memory,hardware,backends,peer   --runs=N   --frames=N   --backbones=small,large   --no-record
 *
 * 1. headline: LLaVA-Mini (1/4/16/64 vision tokens) vs a LLaVA-v1.5-style pipeline, FLOPs and ms per stage
 * 2. memory: KV bytes per picture (analytic) and RSS over a synthetic video (measured)
 * 3. hardware: bandwidth and peak MatMul, the LLM stage's decode/prefill against them
 * 4. backends: each stage on onnxruntime-node CPU vs onnxruntime-web WASM
 * 5. peer: transformers.js on the same decoder (see peer.ts)
 * 6. llamacpp (only with --only=llamacpp): llama.cpp through node-llama-cpp on the same weights (see llamacpp.ts);
 *    options --threads=N[,M] (default: all cores) --formats=fp32,fp16,q8,q4 (default fp32,q8,q4)
 * 7. release (only with --only=release): the release's shapes end to end (see release.ts); ~19 GB checkpoint,
 *    needs ~33 GB free disk, about an hour on 2 cores; --scale=small (minutes), --keep, --dtypes=q4,q8
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backends } from './backends.js';
import { headline } from './headline.js';
import { hardware } from './hardware.js';
import { llamacpp } from './llamacpp.js';
import { benchCommand, flag, LoadMeter, listOption, log, machine, now, option, RESULTS, ROOT, replaceMarked } from './lib/common.js';
import { plotOutput } from './lib/plot.js';
import { memory, videoChild } from './memory.js';
import { peer } from './peer.js';
import { release, releaseChild } from './release.js';

/** Benches that are programs of their own: each reads its own options and records its own RESULTS.md section. */
const PROGRAMS = ['llm', 'kv', 'quant-prefill', 'prefusion', 'convert-memory', 'batch', 'serve', 'follow-up', 'structured', 'live', 'browser-release', 'soak', 'misbehave', 'isolation'];
/** `stages`: the benches packages own (llm's, prefusion's, pipeline's and batch's `npm run bench` each run theirs). */
const STAGES = ['llm', 'prefusion', 'convert-memory', 'batch'];

const args = process.argv.slice(2);
const QUICK = flag('quick');
/** `--video-frames=N` of the release table (default 60; 0 leaves the video question out). */
function videoFrames(): number {
  const v = option('video-frames') ?? '60';
  if (!/^\d+$/.test(v)) throw new Error(`--video-frames: expected a whole number of frames, got ${JSON.stringify(v)}`);
  return Number(v);
}
const ONLY = option('only')?.split(',');
const RUNS = Number(option('runs') ?? (QUICK ? 3 : 7));
const FRAMES = Number(option('frames') ?? (QUICK ? 500 : 10000));

interface Section {
  id: string;
  title: string;
  /** Runs only when named in --only (needs something the default set-up lacks, or hours). */
  optional?: boolean;
  run: () => Promise<{ markdown: string; plots: string[] }>;
}

const SECTIONS: Section[] = [
  { id: 'headline', title: '1. Headline: LLaVA-Mini vs a LLaVA-v1.5-style pipeline', run: () => headline(QUICK, RUNS, option('backbones')?.split(',')) },
  { id: 'memory', title: '2. Memory per image and per video frame', run: () => memory(QUICK, FRAMES) },
  { id: 'hardware', title: '3. Against the hardware limit', run: () => hardware(QUICK) },
  { id: 'backends', title: '4. Backends: onnxruntime-node CPU vs onnxruntime-web WASM', run: () => backends(QUICK, RUNS) },
  { id: 'peer', title: '5. A peer: transformers.js on the same decoder', run: () => peer(QUICK) },
  {
    id: 'llamacpp',
    title: '6. A peer on the same weights: llama.cpp (node-llama-cpp)',
    optional: true,
    run: () => llamacpp({ quick: QUICK, threads: option('threads')?.split(',').map(Number), formats: option('formats')?.split(',') }),
  },
  {
    id: 'release',
    title: "7. The release's shapes end to end (8B + CLIP-L, random weights)",
    optional: true,
    run: () => release({ scale: option('scale') === 'small' ? 'small' : 'full', keep: flag('keep'), dtypes: listOption('dtypes', ['q4', 'q8']) as ('q4' | 'q8')[], videoFrames: videoFrames(), versus: flag('versus') }),
  },
];

/** The suite's block in RESULTS.md: a head, then one marked block per section, so `--only` runs replace just theirs. */
function ensureSkeleton(): void {
  const text = fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, 'utf8') : '';
  if (!text.includes('<!-- suite:start -->') || !text.includes('<!-- suite-head:start -->')) {
    const blocks = ['head', ...SECTIONS.map((s) => s.id)].map((id) => `<!-- suite-${id}:start -->\n(not run yet)\n<!-- suite-${id}:end -->`);
    replaceMarked(RESULTS, 'suite', blocks.join('\n\n'), '<!-- llm-stage:start -->');
    return;
  }
  // A section added since the suite block was written gets its own block at the end of it; the others stay.
  for (const s of SECTIONS) if (!text.includes(`<!-- suite-${s.id}:start -->`)) replaceMarked(RESULTS, `suite-${s.id}`, '(not run yet)', '<!-- suite:end -->');
}

async function main(): Promise<void> {
  const command = benchCommand();
  const record = !flag('no-record');
  plotOutput.record = record;
  if (record) ensureSkeleton();
  const unknown = ONLY?.filter((id) => !SECTIONS.some((s) => s.id === id)) ?? [];
  if (unknown.length) throw new Error(`--only: unknown section(s) ${unknown.join(', ')} (known: ${SECTIONS.map((s) => s.id).join(', ')})`);
  for (const s of SECTIONS.filter((x) => (ONLY ? ONLY.includes(x.id) : !x.optional))) {
    const meter = new LoadMeter();
    const started = new Date();
    const t = now();
    let body: string;
    let plots: string[] = [];
    let failed = false;
    try {
      const r = await s.run();
      body = r.markdown;
      plots = r.plots;
      if ('childCpuSeconds' in r) meter.addOwn(r.childCpuSeconds as number);
    } catch (err) {
      body = `This table failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
      failed = true;
      process.exitCode = 1;
      log(body);
    }
    const images = plots.map((p) => `![${path.basename(p, '.png')}](${path.relative(path.join(ROOT, 'bench'), p)})`);
    const run = `<sub>Run: \`${command}\`, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${QUICK ? 'quick' : 'full'} mode, ${((now() - t) / 1000).toFixed(0)} s; ${machine()}; load: ${meter.report()}.</sub>`;
    const section = [`### ${s.title}`, '', run, '', body, '', ...images].join('\n');
    console.log(`\n${section}\n`);
    // A failed run keeps the table recorded before it: a stack trace is no result.
    if (record && !failed) replaceMarked(RESULTS, `suite-${s.id}`, section);
  }
  if (record) {
    const reading = readingFile();
    const head = [
      '## Suite (issue 6)',
      '',
      `onnxruntime 1.30 (node CPU and web WASM). Each table below names the command, date, machine and machine load of the run that wrote it (tables recorded before 2026-12-07 name none: those of 2026-12-01 ran on an AMD EPYC with 2 cores and AVX2, those of 2026-11-21 on an AMD EPYC with 2 cores and AVX-512 VNNI).`,
      '',
      ...(reading ? [reading] : []),
    ];
    replaceMarked(RESULTS, 'suite-head', head.join('\n'));
    log('written to bench/RESULTS.md');
  }
}

/** bench/READING.md: the hand-written reading of the latest full run, placed above the tables. */
function readingFile(): string | undefined {
  const file = path.join(ROOT, 'bench', 'READING.md');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : undefined;
}

/** Run compiled benches (beside this file) one after another, each in its own process; the first failure's status. */
function runPrograms(names: readonly string[], options: string[]): number {
  const dir = path.dirname(fileURLToPath(import.meta.url));
  for (const name of names) {
    log(`bench: ${name} ${options.join(' ')}`);
    const r = spawnSync(process.execPath, [path.join(dir, `${name}.js`), ...options], { stdio: 'inherit' });
    if (r.status !== 0) return r.status ?? 1;
  }
  return 0;
}

const [first, ...rest] = args;
if (first === '--video-child') {
  await videoChild(args[1], Number(args[2]));
} else if (first === '--release-child') {
  await releaseChild(args[1], args[2]);
} else if (first === 'stages' || PROGRAMS.includes(first)) {
  process.exitCode = runPrograms(first === 'stages' ? STAGES : [first], rest);
} else if (first !== undefined && !first.startsWith('--')) {
  log(`npm run bench: unknown bench ${JSON.stringify(first)} (known: ${[...PROGRAMS, 'stages'].join(', ')}; options alone run the suite)`);
  process.exitCode = 2;
} else {
  await main();
}
