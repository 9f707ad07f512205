import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '@llava-mini/core/node';
import { CLIP_MEAN, CLIP_STD, decodeFrames, frameIndices, loadImage, probeVideo, processFrame, processImage } from '@llava-mini/encoder/node';
import { assistantHeaderIds, type Tokenizer } from '@llava-mini/llm';
import { buildLlavaPrompt } from '@llava-mini/prefusion';
import { type Clip, randomClip } from './clip.js';
import { patchLabels, type PatchLabels } from './labels.js';
import { clipQuestions, type Question, sceneQuestions } from './questions.js';
import { renderScene } from './render.js';
import { randomScene, Rng, type Scene } from './scene.js';
import { writeClipVideo } from './video.js';

export interface DatasetOptions {
  /** Pictures to write. */
  count: number;
  /** Default 0; the same seed gives the same scenes and questions. */
  seed?: number;
  /** The model's input side and patch size, for the per-patch labels and pixels.u8. Default 80 / 10. */
  imageSize?: number;
  patchSize?: number;
  /**
   * Also write pixels.u8: every picture as the runtime preprocesses it ('pad'), or every sampled
   * frame of every clip as the runtime decodes and preprocesses it, as uint8 [frames, 3, S, S].
   */
  pixels?: boolean;
  /** Clips (real MP4 / WebM files, questions about motion) instead of pictures. */
  clips?: boolean;
  /** Tokenize the prompts and answers (token ids in scenes.jsonl and the shared prompt prefix in meta.json). */
  tokenizer?: Tokenizer;
  onProgress?: (done: number, total: number) => void;
}

export interface QuestionRecord extends Question {
  /** Prompt ids after the prefix every prompt shares (meta.json `prefix`). */
  suffix?: number[];
  /** What the model must generate: assistant header, the answer, <|eot_id|>. */
  target?: number[];
  /** The question's ids when it is a follow-up: the next user message after an earlier answer's target. */
  turn?: number[];
}

export interface SceneRecord {
  id: number;
  /** The picture or video, relative to the data set's folder. */
  file: string;
  /** The picture, or a clip's first frame. */
  scene: Scene;
  /** Clips only: how the shapes move. */
  clip?: Pick<Clip, 'frames' | 'moves' | 'container'>;
  /** Clips only: the frames the runtime samples (spec 6.1), in order. */
  frameIndices?: number[];
  /** Index of the record's first frame in pixels.u8, and how many it has (1 for a picture). */
  pixel: number;
  frames: number;
  questions: QuestionRecord[];
  /** Pictures only: per-patch labels for the auxiliary loss. */
  patches?: PatchLabels;
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
  fs.mkdirSync(path.join(dir, options.clips ? 'videos' : 'images'), { recursive: true });
  const rng = new Rng(seed * 2654435761 + 1);
  const tok = options.tokenizer;
  const prefix = tok ? sharedPrefix(tok) : undefined;
  const header = tok ? assistantHeaderIds(tok) : [];
  const eot = tok ? tok.encode('<|eot_id|>', { addSpecialTokens: false }) : [];

  const lines: string[] = [];
  const pixelFile = options.pixels ? fs.openSync(path.join(dir, 'pixels.u8.partial'), 'w') : undefined;
  const plane = S * S;
  const writePixels = (px: Float32Array) => {
    const bytes = new Uint8Array(px.length);
    for (let i = 0; i < px.length; i++) bytes[i] = toByte(px[i], Math.floor(i / plane) % 3);
    fs.writeSync(pixelFile!, bytes);
  };
  let pixel = 0;
  try {
    for (let id = 0; id < options.count; id++) {
      const name = String(id).padStart(6, '0');
      let record: SceneRecord;
      if (options.clips) {
        const clip = randomClip(rng);
        const file = `videos/${name}.${clip.container}`;
        await writeClipVideo(clip, path.join(dir, file), rng.int(0, 2 ** 31));
        const info = await probeVideo(path.join(dir, file));
        const indices = frameIndices(info.frames, info.fps);
        if (pixelFile !== undefined) {
          for await (const frame of decodeFrames(path.join(dir, file), info, indices)) writePixels(processFrame(frame, { imageSize: S, resolutionRatio: 1 }).data);
        }
        const { frames, moves, container } = clip;
        record = { id, file, scene: clip.scene, clip: { frames, moves, container }, frameIndices: indices, pixel, frames: indices.length, questions: clipQuestions(clip) };
      } else {
        const scene = randomScene(rng);
        const file = `images/${name}.${scene.format === 'jpeg' ? 'jpg' : 'png'}`;
        const encoded = await renderScene(scene, rng.int(0, 2 ** 31));
        fs.writeFileSync(path.join(dir, file), encoded);
        if (pixelFile !== undefined) writePixels(processImage(await loadImage(encoded), { imageSize: S, imageAspectRatio: 'pad', resolutionRatio: 1 }).data);
        record = { id, file, scene, pixel, frames: 1, questions: sceneQuestions(scene, rng), patches: patchLabels(scene, grid) };
      }
      pixel += record.frames;
      if (tok && prefix) for (const q of record.questions) tokenize(tok, prefix, header, eot, q);
      lines.push(JSON.stringify(record));
      options.onProgress?.(id + 1, options.count);
    }
  } finally {
    if (pixelFile !== undefined) fs.closeSync(pixelFile);
  }
  if (options.pixels) fs.renameSync(path.join(dir, 'pixels.u8.partial'), path.join(dir, 'pixels.u8'));
  writeFileAtomic(path.join(dir, 'scenes.jsonl'), `${lines.join('\n')}\n`);
  const meta = { seed, count: options.count, media: options.clips ? 'video' : 'picture', imageSize: S, patchSize: P, imageAspectRatio: 'pad', prefix, header, eot };
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
  if (!memo.has('p:How many shapes are there?')) memo.set('p:How many shapes are there?', buildLlavaPrompt(tok, 'How many shapes are there?').ids);
  const key = `p:${q.question}`;
  let ids = memo.get(key);
  if (!ids) {
    ids = buildLlavaPrompt(tok, q.question).ids;
    if (prefix.some((t, i) => ids![i] !== t)) throw new Error(`prompt of '${q.question}' does not start with the shared prefix`);
    memo.set(key, ids);
  }
  const answerIds = (text: string) => {
    let a = memo!.get(`a:${text}`);
    if (!a) memo!.set(`a:${text}`, (a = tok.encode(text, { addSpecialTokens: false })));
    return a;
  };
  q.suffix = ids.slice(prefix.length);
  q.target = [...header, ...answerIds(q.answer), ...eot];
  let turn = memo.get(`t:${q.question}`);
  if (!turn) {
    // The question asked after one earlier exchange, as the runtime renders a follow-up; it must be
    // that exchange's ids followed by ids of its own, so training can chain turns of any length.
    const [user, assistant] = ['How many shapes are there?', '1'];
    const before = [...prefix, ...memo.get(`p:${user}`)!.slice(prefix.length), ...header, ...answerIds(assistant), ...eot];
    const full = buildLlavaPrompt(tok, q.question, { history: [{ user, assistant }] }).ids;
    if (before.some((t, i) => full[i] !== t)) throw new Error(`the follow-up prompt of '${q.question}' does not start with the first exchange's ids`);
    memo.set(`t:${q.question}`, (turn = full.slice(before.length)));
  }
  q.turn = turn;
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
