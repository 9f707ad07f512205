/**
 * Converter memory benchmark: converts a LLaVA-Mini checkpoint with a large config (several GB of
 * seeded random weights, bf16 like the release, CLIP in fp32) and records the converter's peak RSS,
 * measured in a child process so nothing else is counted. The converter streams tensors one at a
 * time into the external-data files, so peak memory should track the largest tensor, not the
 * checkpoint: an 8B checkpoint (16 GB) then converts on a 24 GB machine.
 *
 *   npm run bench -- convert-memory              the large config (~3.4 GB checkpoint)
 *   npm run bench -- convert-memory --quick      a ~0.5 GB checkpoint
 *
 * The checkpoint is generated once under <repo>/.cache/bench/convert (gitignored).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertCheckpoint } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { CACHE, flag, now } from './lib/common.js';
import { CONVERT_LARGE, CONVERT_SMALL } from './lib/shapes.js';

const QUICK = flag('quick');
const DIR = path.join(CACHE, 'convert');

function dirBytes(dir: string): { total: number; largest: number } {
  let total = 0;
  let largest = 0;
  for (const f of fs.readdirSync(dir)) {
    const size = fs.statSync(path.join(dir, f)).size;
    total += size;
    largest = Math.max(largest, size);
  }
  return { total, largest };
}

const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;

async function child(checkpoint: string, out: string): Promise<void> {
  const t0 = now();
  await convertCheckpoint(checkpoint, out, { force: true });
  // maxRSS is in kilobytes: the high-water mark of this process's resident memory.
  process.stdout.write(JSON.stringify({ seconds: (now() - t0) / 1000, peakRss: process.resourceUsage().maxRSS * 1024 }));
}

async function main(): Promise<void> {
  const options = QUICK ? CONVERT_SMALL : CONVERT_LARGE;
  const checkpoint = path.join(DIR, QUICK ? 'quick-hf' : 'large-hf');
  const out = path.join(DIR, QUICK ? 'quick-onnx' : 'large-onnx');
  if (!fs.existsSync(path.join(checkpoint, 'config.json'))) {
    process.stderr.write(`writing the random checkpoint to ${checkpoint} (once)...\n`);
    await writeTinyCheckpoint(checkpoint, options);
  }
  const shards = fs.readdirSync(checkpoint).filter((f) => f.endsWith('.safetensors'));
  const src = shards.reduce((n, f) => n + fs.statSync(path.join(checkpoint, f)).size, 0);
  // The largest tensor: a 2-D weight read as bf16, widened to fp32 and transposed once.
  const largestTensor = Math.max(options.intermediateSize * options.hiddenSize, 528 * options.hiddenSize) * 4;
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', checkpoint, out], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`conversion failed: ${r.stderr}`);
  const { seconds, peakRss } = JSON.parse(r.stdout);
  const written = dirBytes(out);
  const rows = [
    ['checkpoint (safetensors, bf16 + fp32 CLIP)', gb(src)],
    ['converted (ONNX + external data, fp32)', gb(written.total)],
    ['largest fp32 tensor', mb(largestTensor)],
    ['converter peak RSS', mb(peakRss)],
    ['peak RSS / checkpoint size', (peakRss / src).toFixed(3)],
    ['conversion time', `${seconds.toFixed(1)} s (${(written.total / 1e6 / seconds).toFixed(0)} MB/s written)`],
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(44)} ${v}`);
  fs.rmSync(out, { recursive: true, force: true });
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4]);
else await main();
