#!/usr/bin/env node
// llava-mini-shapes: write a shapes-world data set (pictures + scenes.jsonl) from a seed.
//   llava-mini-shapes --out DIR --count N [--seed S] [--image-size 80] [--patch-size 10] [--pixels] [--clips] [--tokenizer DIR]
// --clips writes clips (MP4 / WebM at 1 fps, shapes that move) instead of pictures.
// Without --tokenizer the shapes model's byte-level BPE tokenizer is written into DIR and used.
// --retokenize rewrites the token ids of an existing DIR for its (new) tokenizer, leaving the pictures.
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadTokenizer } from '@llava-mini/llm/node';
import { retokenize, writeDataset } from './dataset.js';
import { writeShapesTokenizer } from './tokenizer.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    count: { type: 'string' },
    seed: { type: 'string', default: '0' },
    'image-size': { type: 'string', default: '80' },
    'patch-size': { type: 'string', default: '10' },
    pixels: { type: 'boolean', default: false },
    clips: { type: 'boolean', default: false },
    tokenizer: { type: 'string' },
    retokenize: { type: 'boolean', default: false },
  },
});
const int = (v: string | undefined, flag: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`llava-mini-shapes: ${flag} must be a non-negative integer, got ${v}\n`);
    process.exit(2);
  }
  return n;
};
if (values.out && values.retokenize) {
  if (!values.tokenizer) writeShapesTokenizer(values.out);
  retokenize(values.out, loadTokenizer(values.tokenizer ?? values.out));
  process.stderr.write(`retokenized ${values.out}\n`);
  process.exit(0);
}
if (!values.out || !values.count) {
  process.stderr.write('usage: llava-mini-shapes --out DIR --count N [--seed S] [--image-size 80] [--patch-size 10] [--pixels] [--clips] [--tokenizer DIR]\n');
  process.exit(2);
}
sharp.concurrency(1);
const out = values.out;
let tokDir = values.tokenizer;
if (!tokDir) {
  (await import('node:fs')).mkdirSync(out, { recursive: true });
  writeShapesTokenizer(out);
  tokDir = out;
}
const count = int(values.count, '--count');
let last = 0;
await writeDataset(out, {
  count,
  seed: int(values.seed, '--seed'),
  imageSize: int(values['image-size'], '--image-size'),
  patchSize: int(values['patch-size'], '--patch-size'),
  pixels: values.pixels,
  clips: values.clips,
  tokenizer: loadTokenizer(tokDir),
  onProgress: (done, total) => {
    const pct = Math.floor((100 * done) / total);
    if (process.stderr.isTTY || pct >= last + 10 || done === total) {
      process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}scenes ${done}/${total} (${pct}%)${process.stderr.isTTY ? '' : '\n'}`);
      last = pct;
    }
  },
});
process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}wrote ${count} scenes to ${out}\n`);
