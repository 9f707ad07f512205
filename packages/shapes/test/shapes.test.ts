import { describe, expect, it } from 'vitest';
import { COLORS, demoScene, insideShape, patchLabels, randomScene, Rng, sceneQuestions, SHAPES } from '../src/index.js';

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
        } else throw new Error(`unexpected question ${q.question}`);
        expect(COLORS.includes(q.answer as never) || SHAPES.includes(q.answer as never) || /^(yes|no|left|right|top|bottom|[1-4])$/.test(q.answer)).toBe(true);
      }
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
