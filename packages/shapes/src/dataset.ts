import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '@llava-mini/core/node';
import { CLIP_MEAN, CLIP_STD, loadImage, processImage } from '@llava-mini/encoder/node';
import { assistantHeaderIds, type Tokenizer } from '@llava-mini/llm';
import { buildLlavaPrompt } from '@llava-mini/prefusion';
import { patchLabels, type PatchLabels } from './labels.js';
import { type Question, sceneQuestions } from './questions.js';
import { renderScene } from './render.js';
import { randomScene, Rng, type Scene } from './scene.js';

export interface DatasetOptions {
  /** Pictures to write. */
  count: number;
  /** Default 0; the same seed gives the same scenes and questions. */
  seed?: number;
  /** The model's input side and patch size, for the per-patch labels and pixels.u8. Default 80 / 10. */
  imageSize?: number;
  patchSize?: number;
  /** Also write pixels.u8: every picture as the runtime preprocesses it ('pad'), as uint8 [N, 3, S, S]. */
  pixels?: boolean;
  /** Tokenize the prompts and answers (token ids in scenes.jsonl and the shared prompt prefix in meta.json). */
  tokenizer?: Tokenizer;
  onProgress?: (done: number, total: number) => void;
}

export interface QuestionRecord extends Question {
  /** Prompt ids after the prefix every prompt shares (meta.json `prefix`). */
  suffix?: number[];
  /** What the model must generate: assistant header, the answer, <|eot_id|>. */
  target?: number[];
}

export interface SceneRecord {
  id: number;
  file: string;
  scene: Scene;
  questions: QuestionRecord[];
  patches: PatchLabels;
}

/** The ids every prompt starts with: the longest common prefix of three different questions' prompts. */
export function sharedPrefix(tokenizer: Tokenizer): number[] {
  const prompts = ['How many shapes are there?', 'What shape is the red one?', 'Is there a blue circle?'].map((q) => buildLlavaPrompt(tokenizer, q).ids);
  let n = 0;
  while (prompts.every((p) => p[n] === prompts[0][n])) n++;
  return prompts[0].slice(0, n);
}

/** Undo CLIP normalisation of one value back to its 8-bit pixel (exact: the forward map is monotone and fine-grained). */
function toByte(v: number, c: number): number {
  return Math.max(0, Math.min(255, Math.round((v * CLIP_STD[c] + CLIP_MEAN[c]) * 255)));
}

/**
 * Write a shapes-world data set to `dir`: images/NNNNNN.{png,jpg}, scenes.jsonl (scene, questions,
 * answers, per-patch labels, and token ids when a tokenizer is given), meta.json and optionally
 * pixels.u8. Pictures are decoded back and preprocessed with the runtime's own code, so training
 * sees exactly what inference sees (JPEG artefacts included).
 */
export async function writeDataset(dir: string, options: DatasetOptions): Promise<void> {
  const seed = options.seed ?? 0;
  const S = options.imageSize ?? 80;
  const P = options.patchSize ?? 10;
  const grid = Math.floor(S / P);
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const rng = new Rng(seed * 2654435761 + 1);
  const tok = options.tokenizer;
  const prefix = tok ? sharedPrefix(tok) : undefined;
  const header = tok ? assistantHeaderIds(tok) : [];
  const eot = tok ? tok.encode('<|eot_id|>', { addSpecialTokens: false }) : [];

  const lines: string[] = [];
  const pixelFile = options.pixels ? fs.openSync(path.join(dir, 'pixels.u8.partial'), 'w') : undefined;
  try {
    for (let id = 0; id < options.count; id++) {
      const scene = randomScene(rng);
      const file = `images/${String(id).padStart(6, '0')}.${scene.format === 'jpeg' ? 'jpg' : 'png'}`;
      const encoded = await renderScene(scene, rng.int(0, 2 ** 31));
      fs.writeFileSync(path.join(dir, file), encoded);
      const questions: QuestionRecord[] = sceneQuestions(scene, rng);
      if (tok && prefix) for (const q of questions) tokenize(tok, prefix, header, eot, q);
      if (pixelFile !== undefined) {
        const px = processImage(await loadImage(encoded), { imageSize: S, imageAspectRatio: 'pad', resolutionRatio: 1 }).data;
        const bytes = new Uint8Array(px.length);
        const plane = S * S;
        for (let i = 0; i < px.length; i++) bytes[i] = toByte(px[i], Math.floor(i / plane));
        fs.writeSync(pixelFile, bytes);
      }
      lines.push(JSON.stringify({ id, file, scene, questions, patches: patchLabels(scene, grid) } satisfies SceneRecord));
      options.onProgress?.(id + 1, options.count);
    }
  } finally {
    if (pixelFile !== undefined) fs.closeSync(pixelFile);
  }
  if (options.pixels) fs.renameSync(path.join(dir, 'pixels.u8.partial'), path.join(dir, 'pixels.u8'));
  writeFileAtomic(path.join(dir, 'scenes.jsonl'), `${lines.join('\n')}\n`);
  const meta = { seed, count: options.count, imageSize: S, patchSize: P, imageAspectRatio: 'pad', prefix, header, eot };
  writeFileAtomic(path.join(dir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
}

const tokenized = new WeakMap<Tokenizer, Map<string, number[]>>();

/**
 * The token ids of one question: the prompt after the shared prefix, and what the model must
 * generate. Memoised per tokenizer: a data set has only a few hundred distinct questions, and
 * rendering the chat template is by far the slowest part of writing one.
 */
function tokenize(tok: Tokenizer, prefix: number[], header: number[], eot: number[], q: QuestionRecord): void {
  let memo = tokenized.get(tok);
  if (!memo) tokenized.set(tok, (memo = new Map()));
  const key = `p:${q.question}`;
  let ids = memo.get(key);
  if (!ids) {
    ids = buildLlavaPrompt(tok, q.question).ids;
    if (prefix.some((t, i) => ids![i] !== t)) throw new Error(`prompt of '${q.question}' does not start with the shared prefix`);
    memo.set(key, ids);
  }
  let answer = memo.get(`a:${q.answer}`);
  if (!answer) memo.set(`a:${q.answer}`, (answer = tok.encode(q.answer, { addSpecialTokens: false })));
  q.suffix = ids.slice(prefix.length);
  q.target = [...header, ...answer, ...eot];
}

/** Rewrite the token ids of a data set for another tokenizer (pictures and questions stay). */
export function retokenize(dir: string, tok: Tokenizer): void {
  const prefix = sharedPrefix(tok);
  const header = assistantHeaderIds(tok);
  const eot = tok.encode('<|eot_id|>', { addSpecialTokens: false });
  const scenes = readScenes(dir);
  for (const s of scenes) for (const q of s.questions) tokenize(tok, prefix, header, eot, q);
  writeFileAtomic(path.join(dir, 'scenes.jsonl'), `${scenes.map((s) => JSON.stringify(s)).join('\n')}\n`);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
  writeFileAtomic(path.join(dir, 'meta.json'), `${JSON.stringify({ ...meta, prefix, header, eot }, null, 2)}\n`);
}

/** Read scenes.jsonl of a data set written by writeDataset. */
export function readScenes(dir: string): SceneRecord[] {
  return fs
    .readFileSync(path.join(dir, 'scenes.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as SceneRecord);
}
