// Converts the models the page offers into public/models/ (once; later runs reuse them) and lists
// them in public/models/index.json, with what the page tells a person about each:
//   - the trained demo model, when the repository has it (models/llava-mini-shapes, a Hugging Face
//     checkpoint folder or an already converted one), listed first so the page opens with it;
//   - a random-weight tiny model, which always works but answers noise.
// Each gets fp32 and fp16 files; the page picks fp16 on WebGPU adapters with shader-f16.
// test/page.test.ts calls prepareModels() too, so the page it drives opens the way this lays out.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertCheckpoint, MANIFEST_FILE } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';

const here = path.dirname(fileURLToPath(import.meta.url));
const PUBLIC_MODELS = path.resolve(here, '../public/models');
const DEMO = path.resolve(here, '../../../models/llava-mini-shapes');
/**
 * The demo model's world, offered by the page as its samples (scripts/demo-assets.mjs writes both):
 * a picture (a red circle left, a blue square right, a green triangle bottom right) and a clip (a
 * red circle moving right past a blue square that stays, 6 frames at 1 fps).
 */
const SAMPLE = path.resolve(here, '../../assets/shapes.png');
const SAMPLE_CLIP = path.resolve(here, '../../assets/shapes.mp4');

/**
 * What the page says about the demo model (models/llava-mini-shapes/README.md): question forms it
 * was trained on, for pictures and for clips (the first of each fills the box). It was trained on
 * conversations too, so a follow-up continues the conversation (the page's default).
 */
export const DEMO_HINTS = {
  about: 'a tiny LLaVA-Mini trained here on pictures and 1 fps clips of 1-4 circles, squares and triangles in six colours: it answers questions like these with one word, follow-ups included',
  questions: ['Is the red circle on the left or on the right?', 'What color is the square?', 'How many shapes are there?', 'Is the green triangle at the top or at the bottom?', 'What shape is the blue one?', 'Is there a green triangle?'],
  clipQuestions: ['Which way does the red circle move?', 'Does the blue square move?', 'How many shapes are there?'],
};
const TINY_HINTS = { about: 'random weights: it runs, but its answers are noise' };

/** Convert `checkpoint` to fp32/ and fp16/ under `dir`, unless a previous run did. */
async function variants(name, checkpoint, dir, log) {
  for (const dtype of ['fp32', 'fp16']) {
    const target = path.join(dir, dtype);
    if (fs.existsSync(path.join(target, MANIFEST_FILE))) continue;
    log(`[models] ${name}: converting to ${dtype}...`);
    await convertCheckpoint(checkpoint(), target, { dtype, force: true });
  }
  fs.writeFileSync(path.join(dir, 'variants.json'), `${JSON.stringify({ fp32: 'fp32/', fp16: 'fp16/' })}\n`);
}

/**
 * Lay the page's models out under `out` (served at `models/`) and write `out`/index.json. `tiny`:
 * also the random-weight model (the page's fallback when the repository has no demo model).
 */
export async function prepareModels(out = PUBLIC_MODELS, { tiny = true, log = console.log } = {}) {
  const models = [];
  fs.mkdirSync(out, { recursive: true });
  const demoDir = path.join(out, 'llava-mini-shapes');
  if (fs.existsSync(path.join(DEMO, MANIFEST_FILE))) {
    // Already converted: served as it is (its own dtype for every device).
    fs.rmSync(demoDir, { recursive: true, force: true });
    fs.cpSync(DEMO, demoDir, { recursive: true });
  } else if (fs.existsSync(path.join(DEMO, 'config.json'))) {
    await variants('llava-mini-shapes', () => DEMO, demoDir, log);
  }
  if (fs.existsSync(demoDir)) {
    fs.copyFileSync(SAMPLE, path.join(demoDir, 'sample.png'));
    fs.copyFileSync(SAMPLE_CLIP, path.join(demoDir, 'sample.mp4'));
    const at = 'models/llava-mini-shapes/';
    models.push({ name: 'llava-mini-shapes', url: at, trained: true, sample: `${at}sample.png`, sampleClip: `${at}sample.mp4`, ...DEMO_HINTS });
  }

  if (tiny) {
    const tinyDir = path.join(out, 'llava-mini-tiny');
    const tinyCheckpoint = path.join(out, '.llava-mini-tiny.hf');
    if (!['fp32', 'fp16'].every((d) => fs.existsSync(path.join(tinyDir, d, MANIFEST_FILE)))) {
      // std 0.3: the random model's answer then depends on the picture (at the default 0.02 it repeats one token).
      await writeTinyCheckpoint(tinyCheckpoint, { seed: 7, std: 0.3 });
    }
    await variants('llava-mini-tiny (random weights)', () => tinyCheckpoint, tinyDir, log);
    fs.rmSync(tinyCheckpoint, { recursive: true, force: true });
    models.push({ name: 'llava-mini-tiny', url: 'models/llava-mini-tiny/', trained: false, ...TINY_HINTS });
  }

  fs.writeFileSync(path.join(out, 'index.json'), `${JSON.stringify({ models }, null, 2)}\n`);
  log(`[models] ${models.map((m) => m.name).join(', ')} in ${path.relative(process.cwd(), out) || '.'}`);
  return models;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await prepareModels();
