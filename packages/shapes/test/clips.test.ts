// Clips of the shapes world: every frame keeps its shapes inside and apart, the questions' answers
// are those of the geometry, and a written clip is a real video the runtime's decoder reads back
// frame by frame at 1 fps, with each shape where the geometry puts it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeFrames, frameIndices, probeVideo, type RgbFrame } from '@llava-mini/encoder/node';
import { afterAll, describe, expect, it } from 'vitest';
import { type Clip, clipFrame, clipQuestions, demoClip, displacement, randomClip, Rng, writeClipVideo } from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shapes-clips-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const clips = (seed: number, n: number): Clip[] => {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => randomClip(rng));
};

describe('clips', () => {
  it('are a pure function of the seed: 4-8 frames, 1-3 shapes, one or two moving', () => {
    expect(clips(3, 5)).toEqual(clips(3, 5));
    expect(clips(4, 5)).not.toEqual(clips(3, 5));
    for (const c of clips(5, 300)) {
      expect(c.frames).toBeGreaterThanOrEqual(4);
      expect(c.frames).toBeLessThanOrEqual(8);
      expect(c.scene.shapes.length).toBeGreaterThanOrEqual(1);
      expect(c.scene.shapes.length).toBeLessThanOrEqual(3);
      expect(c.moves.length).toBeLessThanOrEqual(Math.min(2, c.scene.shapes.length));
      if (c.scene.shapes.length > 1) expect(c.moves.length).toBeGreaterThanOrEqual(1);
    }
  });

  it('keep every shape inside the picture and apart from the others in every frame', () => {
    for (const c of clips(6, 300)) {
      for (let t = 0; t < c.frames; t++) {
        const { shapes, width, height } = clipFrame(c, t);
        for (const [i, a] of shapes.entries()) {
          expect(a.cx - a.rx).toBeGreaterThan(0);
          expect(a.cx + a.rx).toBeLessThan(width);
          expect(a.cy - a.ry).toBeGreaterThan(0);
          expect(a.cy + a.ry).toBeLessThan(height);
          for (const b of shapes.slice(i + 1)) expect(Math.abs(a.cx - b.cx) >= a.rx + b.rx || Math.abs(a.cy - b.cy) >= a.ry + b.ry).toBe(true);
        }
      }
    }
  });

  it('ask questions whose answers are what the first and last frames show', () => {
    for (const c of clips(7, 300)) {
      const [first, last] = [clipFrame(c, 0).shapes, clipFrame(c, c.frames - 1).shapes];
      const seen = new Set<string>();
      for (const q of clipQuestions(c)) {
        let m: RegExpExecArray | null;
        const find = (color: string, kind: string) => {
          const i = first.findIndex((s) => s.color === color && s.kind === kind);
          expect(i, q.question).toBeGreaterThanOrEqual(0);
          return { dx: last[i].cx - first[i].cx, dy: last[i].cy - first[i].cy };
        };
        if ((m = /^Which way does the (\w+) (\w+) move\?$/.exec(q.question))) {
          const { dx, dy } = find(m[1], m[2]);
          // One axis only, and far enough to see: at least a quarter of the picture.
          const way = Math.abs(dx) > Math.abs(dy) ? (dx < 0 ? 'left' : 'right') : dy < 0 ? 'up' : 'down';
          expect(q.answer).toBe(way);
          expect(Math.min(Math.abs(dx), Math.abs(dy))).toBe(0);
          expect(Math.max(Math.abs(dx) / c.scene.width, Math.abs(dy) / c.scene.height)).toBeGreaterThanOrEqual(0.25 - 1e-9);
        } else if ((m = /^Does the (\w+) (\w+) move\?$/.exec(q.question))) {
          const { dx, dy } = find(m[1], m[2]);
          expect(q.answer).toBe(dx !== 0 || dy !== 0 ? 'yes' : 'no');
        } else if (q.question === 'How many shapes are there?') {
          expect(q.answer).toBe(String(first.length));
        } else throw new Error(`unexpected question ${q.question}`);
        expect(seen.has(q.question), `asked twice: ${q.question}`).toBe(false);
        seen.add(q.question);
      }
    }
  });

  it('have both answers of "Does it move?" and every direction', () => {
    const answers = new Set(clips(8, 200).flatMap((c) => clipQuestions(c).map((q) => `${q.type}:${q.answer}`)));
    for (const a of ['moves:yes', 'moves:no', 'motion:left', 'motion:right', 'motion:up', 'motion:down']) expect(answers.has(a), a).toBe(true);
  });

  const pixel = (f: RgbFrame, x: number, y: number) => Array.from(f.data.subarray(3 * (Math.round(y) * f.width + Math.round(x)), 3 * (Math.round(y) * f.width + Math.round(x)) + 3));
  const near = (got: number[], want: readonly number[]) => got.every((v, i) => Math.abs(v - want[i]) <= 40);

  it.each(['mp4', 'webm'] as const)('written as %s, decode through the runtime to one frame a second with the shapes where they move', async (container) => {
    const clip: Clip = { ...demoClip(), container };
    const file = path.join(root, `demo.${container}`);
    await writeClipVideo(clip, file);
    const info = await probeVideo(file);
    expect(info).toMatchObject({ width: clip.scene.width, height: clip.scene.height, frames: clip.frames, fps: 1 });
    const indices = frameIndices(info.frames, info.fps);
    expect(indices).toHaveLength(clip.frames);
    const frames: RgbFrame[] = [];
    for await (const f of decodeFrames(file, info, indices)) frames.push(f);
    expect(frames).toHaveLength(clip.frames);
    const [circle, square] = clip.scene.shapes;
    const move = clip.moves[0];
    for (const [k, t] of indices.entries()) {
      const [dx] = displacement(move, t);
      // The red circle is where frame t puts it, and gone from where it started once it has moved past its radius.
      expect(near(pixel(frames[k], circle.cx + dx, circle.cy), circle.rgb), `frame ${t}: circle at ${circle.cx + dx}`).toBe(true);
      if (dx > 1.5 * circle.rx) expect(near(pixel(frames[k], circle.cx, circle.cy), [255, 255, 255]), `frame ${t}: start left`).toBe(true);
      // The blue square stays.
      expect(near(pixel(frames[k], square.cx, square.cy), square.rgb), `frame ${t}: square`).toBe(true);
    }
  });
});
