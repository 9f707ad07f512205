// Converts the models the page offers into public/models/ (once; later runs reuse them):
//   - the trained demo model, when the repository has it (models/llava-mini-shapes, a Hugging Face
//     checkpoint folder or an already converted one), listed first so the page opens with it;
//   - a random-weight tiny model, which always works but answers noise.
// Each gets fp32 and fp16 files; the page picks fp16 on WebGPU adapters with shader-f16.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertCheckpoint, MANIFEST_FILE } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '../public/models');
const DEMO = path.resolve(here, '../../../models/llava-mini-shapes');

/** Convert `checkpoint` to fp32/ and fp16/ under `dir`, unless a previous run did. */
async function variants(name, checkpoint, dir) {
  for (const dtype of ['fp32', 'fp16']) {
    const target = path.join(dir, dtype);
    if (fs.existsSync(path.join(target, MANIFEST_FILE))) continue;
    process.stdout.write(`[models] ${name}: converting to ${dtype}... `);
    await convertCheckpoint(checkpoint(), target, { dtype, force: true });
    console.log('done');
  }
  fs.writeFileSync(path.join(dir, 'variants.json'), `${JSON.stringify({ fp32: 'fp32/', fp16: 'fp16/' })}\n`);
}

const models = [];
fs.mkdirSync(out, { recursive: true });

if (fs.existsSync(path.join(DEMO, MANIFEST_FILE))) {
  // Already converted: served as it is (its own dtype for every device).
  const dir = path.join(out, 'llava-mini-shapes');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(DEMO, dir, { recursive: true });
  models.push({ name: 'llava-mini-shapes', url: 'models/llava-mini-shapes/', trained: true });
} else if (fs.existsSync(path.join(DEMO, 'config.json'))) {
  await variants('llava-mini-shapes', () => DEMO, path.join(out, 'llava-mini-shapes'));
  models.push({ name: 'llava-mini-shapes', url: 'models/llava-mini-shapes/', trained: true });
}

const tinyDir = path.join(out, 'llava-mini-tiny');
const tinyCheckpoint = path.join(out, '.llava-mini-tiny.hf');
if (!['fp32', 'fp16'].every((d) => fs.existsSync(path.join(tinyDir, d, MANIFEST_FILE)))) {
  // std 0.3: the random model's answer then depends on the picture (at the default 0.02 it repeats one token).
  await writeTinyCheckpoint(tinyCheckpoint, { seed: 7, std: 0.3 });
}
await variants('llava-mini-tiny (random weights)', () => tinyCheckpoint, tinyDir);
fs.rmSync(tinyCheckpoint, { recursive: true, force: true });
models.push({ name: 'llava-mini-tiny', url: 'models/llava-mini-tiny/', trained: false });

fs.writeFileSync(path.join(out, 'index.json'), `${JSON.stringify({ models }, null, 2)}\n`);
console.log(`[models] ${models.map((m) => m.name).join(', ')} in ${path.relative(process.cwd(), out) || '.'}`);
