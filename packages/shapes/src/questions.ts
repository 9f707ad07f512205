import type { Clip } from './clip.js';
import { type ColorName, COLORS, type Rng, type Scene, type SceneShape, SHAPES, type ShapeKind } from './scene.js';

/** The question types asked about a picture. */
export const PICTURE_QUESTION_TYPES = ['color', 'shape', 'count', 'exists', 'side', 'vertical', 'scene'] as const;
/** The question types asked about a clip (count: the shapes in it). */
export const VIDEO_QUESTION_TYPES = ['motion', 'moves', 'count'] as const;
export const QUESTION_TYPES = [...PICTURE_QUESTION_TYPES, 'motion', 'moves'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

export interface Question {
  type: QuestionType;
  question: string;
  /** One lowercase word; for 'scene', the JSON object `sceneAnswer` writes. */
  answer: string;
}

/** The question whose answer is the whole scene as JSON (`sceneAnswer`). */
export const SCENE_QUESTION = 'List the shapes as JSON.';

/** A scene shape as the JSON answer lists it. */
export interface SceneShapeJson {
  color: ColorName;
  shape: ShapeKind;
  side: 'left' | 'right';
}

/**
 * The whole scene as one JSON object, `{"shapes":[{"color","shape","side"}...],"count":N}`, the
 * shapes from left to right, written compactly: what a program asking with a JSON schema of that
 * shape wants back, in the key order such a schema's grammar enforces.
 */
export function sceneAnswer(scene: { width: number; shapes: readonly Pick<SceneShape, 'color' | 'kind' | 'cx'>[] }): string {
  const shapes: SceneShapeJson[] = [...scene.shapes]
    .sort((a, b) => a.cx - b.cx)
    .map((s) => ({ color: s.color, shape: s.kind, side: sideOf(scene, s).side }));
  return JSON.stringify({ shapes, count: shapes.length });
}

/** How far (fraction of the width or height) a centre must be from the middle for a left/right or top/bottom question. */
export const SIDE_MARGIN = 0.1;

/** Whether a centre at `at` along a side of length `size` is in its first half, and clear of the middle (`SIDE_MARGIN`), so a side question has one answer. */
function halfOf(at: number, size: number): { first: boolean; clear: boolean } {
  const f = at / size;
  return { first: f < 0.5, clear: Math.abs(f - 0.5) > SIDE_MARGIN };
}

function sideOf(scene: Pick<Scene, 'width'>, s: Pick<SceneShape, 'cx'>): { side: 'left' | 'right'; clear: boolean } {
  const { first, clear } = halfOf(s.cx, scene.width);
  return { side: first ? 'left' : 'right', clear };
}

/**
 * Every question the scene answers unambiguously: the colour of each shape kind present once
 * (asked with "color" or "colour"), the kind of each colour present once, the count, one yes and
 * one no existence question per shape (the no chosen near the truth: same colour or same kind),
 * left/right (top/bottom) for each colour-and-kind pair present once whose centre is clearly
 * off the middle horizontally (vertically), and the whole scene as JSON when every shape's side is clear.
 */
export function sceneQuestions(scene: Scene, rng: Rng): Question[] {
  const out: Question[] = [];
  const { shapes } = scene;
  for (const kind of SHAPES) {
    const these = shapes.filter((s) => s.kind === kind);
    if (these.length === 1) {
      const word = rng.next() < 0.5 ? 'color' : 'colour';
      out.push({ type: 'color', question: `What ${word} is the ${kind}?`, answer: these[0].color });
    }
  }
  for (const color of COLORS) {
    const these = shapes.filter((s) => s.color === color);
    if (these.length === 1) out.push({ type: 'shape', question: `What shape is the ${color} one?`, answer: these[0].kind });
  }
  out.push({ type: 'count', question: 'How many shapes are there?', answer: String(shapes.length) });
  const present = new Set(shapes.map((s) => `${s.color} ${s.kind}`));
  const asked = new Set<string>();
  for (const s of shapes) {
    const yes = `${s.color} ${s.kind}`;
    if (!asked.has(yes)) {
      asked.add(yes);
      out.push({ type: 'exists', question: `Is there a ${yes}?`, answer: 'yes' });
    }
    // A near miss: keep the colour or the kind, change the other.
    const candidates =
      rng.next() < 0.5 ? SHAPES.map((k) => `${s.color} ${k}`) : COLORS.map((c) => `${c} ${s.kind}`);
    const misses = candidates.filter((c) => !present.has(c) && !asked.has(c));
    if (misses.length) {
      const no = rng.pick(misses);
      asked.add(no);
      out.push({ type: 'exists', question: `Is there a ${no}?`, answer: 'no' });
    }
  }
  for (const s of shapes) {
    const twins = shapes.filter((o) => o.color === s.color && o.kind === s.kind);
    const { side, clear } = sideOf(scene, s);
    if (twins.length === 1 && clear) {
      out.push({ type: 'side', question: `Is the ${s.color} ${s.kind} on the left or on the right?`, answer: side });
    }
    const y = halfOf(s.cy, scene.height);
    if (twins.length === 1 && y.clear) {
      out.push({ type: 'vertical', question: `Is the ${s.color} ${s.kind} at the top or at the bottom?`, answer: y.first ? 'top' : 'bottom' });
    }
  }
  // The whole scene, when every shape's side is clear (a shape near the middle has no right answer).
  if (shapes.every((s) => sideOf(scene, s).clear)) {
    out.push({ type: 'scene', question: SCENE_QUESTION, answer: sceneAnswer(scene) });
  }
  return out;
}

/** Every question a clip answers: which way each moving shape goes, whether each shape moves, and how many shapes there are. */
export function clipQuestions(clip: Clip): Question[] {
  const out: Question[] = [];
  clip.scene.shapes.forEach((s, i) => {
    const move = clip.moves.find((m) => m.shape === i);
    if (move) out.push({ type: 'motion', question: `Which way does the ${s.color} ${s.kind} move?`, answer: move.direction });
    out.push({ type: 'moves', question: `Does the ${s.color} ${s.kind} move?`, answer: move ? 'yes' : 'no' });
  });
  out.push({ type: 'count', question: 'How many shapes are there?', answer: String(clip.scene.shapes.length) });
  return out;
}
