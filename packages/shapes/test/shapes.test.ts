import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer } from '@llava-mini/llm/node';
import { describe, expect, it } from 'vitest';
import { writeTinyTokenizer } from '@llava-mini/tiny';
import { COLORS, demoScene, DIRECTIONS, insideShape, MAX_ANSWER_TOKENS, patchLabels, randomScene, Rng, SCENE_QUESTION, sceneAnswer, sceneQuestions, SHAPES, SIDE_MARGIN, writeShapesTokenizer } from '../src/index.js';

describe('the shapes world', () => {
  it('is a pure function of the seed', () => {
    const a = randomScene(new Rng(5));
    const b = randomScene(new Rng(5));
    expect(a).toEqual(b);
    expect(randomScene(new Rng(6))).not.toEqual(a);
  });

  it('draws 1-4 non-overlapping shapes inside the picture', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 200; i++) {
      const s = randomScene(rng);
      expect(s.shapes.length).toBeGreaterThanOrEqual(1);
      expect(s.shapes.length).toBeLessThanOrEqual(4);
      for (const [j, a] of s.shapes.entries()) {
        expect(a.cx - a.rx).toBeGreaterThan(0);
        expect(a.cx + a.rx).toBeLessThan(s.width);
        for (const b of s.shapes.slice(j + 1)) {
          expect(Math.abs(a.cx - b.cx) >= a.rx + b.rx || Math.abs(a.cy - b.cy) >= a.ry + b.ry).toBe(true);
        }
      }
    }
  });

  it('asks only questions the scene answers, with the right answers', () => {
    const rng = new Rng(2);
    for (let i = 0; i < 200; i++) {
      const s = randomScene(rng);
      for (const q of sceneQuestions(s, rng)) {
        let m: RegExpExecArray | null;
        if ((m = /^What colou?r is the (\w+)\?$/.exec(q.question))) {
          const these = s.shapes.filter((x) => x.kind === m![1]);
          expect(these).toHaveLength(1);
          expect(q.answer).toBe(these[0].color);
        } else if ((m = /^What shape is the (\w+) one\?$/.exec(q.question))) {
          const these = s.shapes.filter((x) => x.color === m![1]);
          expect(these).toHaveLength(1);
          expect(q.answer).toBe(these[0].kind);
        } else if (q.question === 'How many shapes are there?') {
          expect(q.answer).toBe(String(s.shapes.length));
        } else if ((m = /^Is there a (\w+) (\w+)\?$/.exec(q.question))) {
          expect(q.answer).toBe(s.shapes.some((x) => x.color === m![1] && x.kind === m![2]) ? 'yes' : 'no');
        } else if ((m = /^Is the (\w+) (\w+) on the left or on the right\?$/.exec(q.question))) {
          const these = s.shapes.filter((x) => x.color === m![1] && x.kind === m![2]);
          expect(these).toHaveLength(1);
          expect(q.answer).toBe(these[0].cx < s.width / 2 ? 'left' : 'right');
        } else if ((m = /^Is the (\w+) (\w+) at the top or at the bottom\?$/.exec(q.question))) {
          const these = s.shapes.filter((x) => x.color === m![1] && x.kind === m![2]);
          expect(these).toHaveLength(1);
          expect(Math.abs(these[0].cy / s.height - 0.5)).toBeGreaterThan(0.1);
          expect(q.answer).toBe(these[0].cy < s.height / 2 ? 'top' : 'bottom');
        } else if (q.question === SCENE_QUESTION) {
          // Every shape once, left to right, each with its side; asked only when no side is in doubt.
          const answer = JSON.parse(q.answer) as { shapes: { color: string; shape: string; side: string }[]; count: number };
          expect(Object.keys(answer)).toEqual(['shapes', 'count']);
          expect(answer.count).toBe(s.shapes.length);
          const byX = [...s.shapes].sort((a, b) => a.cx - b.cx);
          expect(answer.shapes).toEqual(byX.map((x) => ({ color: x.color, shape: x.kind, side: x.cx < s.width / 2 ? 'left' : 'right' })));
          for (const x of s.shapes) expect(Math.abs(x.cx / s.width - 0.5)).toBeGreaterThan(SIDE_MARGIN);
          expect(q.answer).not.toMatch(/\s/);
          continue;
        } else throw new Error(`unexpected question ${q.question}`);
        expect(COLORS.includes(q.answer as never) || SHAPES.includes(q.answer as never) || /^(yes|no|left|right|top|bottom|[1-4])$/.test(q.answer)).toBe(true);
      }
    }
  });

  it('asks for the whole scene exactly when every side is clear of the middle', () => {
    const rng = new Rng(3);
    let asked = 0;
    for (let i = 0; i < 300; i++) {
      const s = randomScene(rng);
      const clear = s.shapes.every((x) => Math.abs(x.cx / s.width - 0.5) > SIDE_MARGIN);
      const scene = sceneQuestions(s, rng).filter((q) => q.type === 'scene');
      expect(scene.length).toBe(clear ? 1 : 0);
      asked += scene.length;
    }
    // About half the pictures: enough to learn from, none with a side in doubt.
    expect(asked).toBeGreaterThan(90);
    expect(asked).toBeLessThan(240);
  });

  it("has a tokenizer in which every answer word and every run of the scene JSON's punctuation is one token", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shapes-tok-'));
    try {
      writeShapesTokenizer(dir);
      const tok = loadTokenizer(dir);
      const pieces = (text: string) => tok.encode(text, { addSpecialTokens: false }).map((id) => tok.decode([id]));
      for (const w of [...COLORS, ...SHAPES, ...DIRECTIONS, 'yes', 'no', 'top', 'bottom']) expect(pieces(w)).toEqual([w]);
      const two = sceneAnswer({ width: 100, shapes: [{ color: 'red', kind: 'circle', cx: 20 }, { color: 'blue', kind: 'square', cx: 80 }] });
      expect(pieces(two)).toEqual(['{"', 'shapes', '":[{"', 'color', '":"', 'red', '","', 'shape', '":"', 'circle', '","', 'side', '":"', 'left', '"},{"', 'color', '":"', 'blue', '","', 'shape', '":"', 'square', '","', 'side', '":"', 'right', '"}],"', 'count', '":', '2', '}']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("leaves an evaluation's answer budget room for the longest whole-scene answer, in this tokenizer and in @llava-mini/tiny's", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shapes-tok-'));
    try {
      for (const name of ['shapes', 'tiny']) fs.mkdirSync(path.join(dir, name));
      writeShapesTokenizer(path.join(dir, 'shapes'));
      writeTinyTokenizer(path.join(dir, 'tiny'));
      for (const [name, budget] of [['shapes', 55], ['tiny', 194]] as const) {
        const tok = loadTokenizer(path.join(dir, name));
        let longest = 0;
        // Four shapes of one colour and kind, every colour and kind tried, 0-4 of them on the left: the longest is what counts.
        for (const color of COLORS) {
          for (const kind of SHAPES) {
            for (let left = 0; left <= 4; left++) {
              const four = sceneAnswer({ width: 100, shapes: [0, 1, 2, 3].map((j) => ({ color, kind, cx: j < left ? 10 + j : 90 + j })) });
              longest = Math.max(longest, tok.encode(four, { addSpecialTokens: false }).length);
            }
          }
        }
        // The figure the budget's comment gives, and room for <|eot_id|> after it.
        expect(longest, name).toBe(budget);
        expect(longest + 1, name).toBeLessThanOrEqual(MAX_ANSWER_TOKENS);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('labels each patch with the shape covering it', () => {
    const scene = demoScene();
    const labels = patchLabels(scene, 8);
    // The red circle (centre 70, 80 in a 320 x 240 picture padded to 320 x 320, so y + 40).
    const side = 320;
    const r = Math.floor(((80 + 40) / side) * 8);
    const c = Math.floor((70 / side) * 8);
    expect(labels.color[r * 8 + c]).toBe(1 + COLORS.indexOf('red'));
    expect(labels.shape[r * 8 + c]).toBe(1 + SHAPES.indexOf('circle'));
    expect(labels.center[r * 8 + c]).toBe(1);
    expect(labels.color[0]).toBe(0);
    expect(insideShape(scene.shapes[0], 70, 80)).toBe(true);
  });
});
