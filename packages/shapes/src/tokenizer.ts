import { LLAVA_MINI_SYSTEM_PROMPT, writeTinyTokenizer, type BpeSpec } from '@llava-mini/tiny';
import { DIRECTIONS } from './clip.js';
import { SCENE_QUESTION, sceneAnswer } from './questions.js';
import { COLORS, SHAPES } from './scene.js';

/** Regular tokens (bytes + merges) of the shapes model's tokenizer: enough for every word it uses to be one token. */
export const SHAPES_REGULAR_VOCAB = 640;

/**
 * The text the shapes model's byte-level BPE is learned from: the system prompt, the chat roles,
 * every question phrasing and every answer, so prompts and answers are a few whole-word tokens
 * (short sequences are most of what makes CPU training affordable).
 */
export function shapesCorpus(): string {
  const lines: string[] = [];
  const times = (n: number, text: string) => {
    for (let i = 0; i < n; i++) lines.push(text);
  };
  times(30, LLAVA_MINI_SYSTEM_PROMPT);
  times(30, 'system\n\nuser\n\nassistant\n\n');
  for (const k of SHAPES) {
    times(3, `What color is the ${k}?`);
    times(3, `What colour is the ${k}?`);
  }
  for (const c of COLORS) times(3, `What shape is the ${c} one?`);
  times(3, 'How many shapes are there?');
  for (const c of COLORS) {
    for (const k of SHAPES) {
      times(1, `Is there a ${c} ${k}?`);
      times(1, `Is the ${c} ${k} on the left or on the right?`);
      times(1, `Is the ${c} ${k} at the top or at the bottom?`);
      times(1, `Which way does the ${c} ${k} move?`);
      times(1, `Does the ${c} ${k} move?`);
    }
  }
  for (const answer of [...COLORS, ...SHAPES, 'yes', 'no', ...DIRECTIONS, 'top', 'bottom']) times(20, answer);
  // Whole-scene answers of 1-4 shapes, so the JSON's punctuation runs ('{"', '":"', '","', '"},{"',
  // '"}],"') are single tokens and a four-shape answer is 55 tokens (194 in @llava-mini/tiny's tokenizer).
  times(3, SCENE_QUESTION);
  for (let i = 0; i < 48; i++) {
    const n = 1 + (i % 4);
    const shapes = Array.from({ length: n }, (_, j) => ({
      kind: SHAPES[(i + j) % SHAPES.length],
      color: COLORS[(i + 2 * j) % COLORS.length],
      cx: j < n / 2 ? 10 + j : 90 + j,
    }));
    lines.push(sceneAnswer({ width: 100, shapes }));
  }
  return lines.join('\n');
}

export const SHAPES_BPE: BpeSpec = { corpus: shapesCorpus(), regularVocab: SHAPES_REGULAR_VOCAB };

/** Write the shapes model's tokenizer files (Llama-3 layout and special tokens, chat template as the release's). */
export function writeShapesTokenizer(dir: string): void {
  writeTinyTokenizer(dir, SHAPES_BPE);
}


