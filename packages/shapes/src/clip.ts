/**
 * Clips of the shapes world: a scene whose shapes keep their look while one or two of them slide
 * left, right, up or down by the same step every frame (the video path's training and test data).
 * Like a scene, a clip is pure geometry; its frames are derived.
 */
import { COLOR_RGB, COLORS, type ColorName, type Rng, type Scene, type SceneShape, SHAPES } from './scene.js';

export const DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
export type Direction = (typeof DIRECTIONS)[number];

export interface ClipMove {
  /** Index of the moving shape in `scene.shapes`. */
  shape: number;
  direction: Direction;
  /** Pixels per frame. */
  step: number;
}

export interface Clip {
  /** The first frame. */
  scene: Scene;
  /** Frames at 1 fps. */
  frames: number;
  moves: ClipMove[];
  container: 'mp4' | 'webm';
}

const clamp255 = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

/** How far a shape has moved at frame `t`, pixels (x, y). */
export function displacement(move: ClipMove | undefined, t: number): [number, number] {
  if (!move) return [0, 0];
  const d = move.step * t;
  return move.direction === 'left' ? [-d, 0] : move.direction === 'right' ? [d, 0] : move.direction === 'up' ? [0, -d] : [0, d];
}

/** Frame `t` of a clip as a scene. */
export function clipFrame(clip: Clip, t: number): Scene {
  const shapes = clip.scene.shapes.map((s, i) => {
    const [dx, dy] = displacement(
      clip.moves.find((m) => m.shape === i),
      t,
    );
    return { ...s, cx: s.cx + dx, cy: s.cy + dy };
  });
  return { ...clip.scene, shapes };
}

/**
 * A random clip: 4-8 frames, 1-3 shapes of different colours, one or two of them moving (a single
 * shape stays put a quarter of the time, so "Does it move?" has both answers) by 25-50 % of the
 * picture over the clip; no two shapes touch in any frame and every shape stays inside.
 */
export function randomClip(rng: Rng): Clip {
  const even = (v: number) => 2 * Math.round(v / 2);
  const frames = rng.int(4, 8);
  const count = rng.int(1, 3);
  const container = rng.next() < 0.5 ? 'mp4' : 'webm';
  for (;;) {
    const side = rng.int(128, 320);
    const aspect = rng.next() < 0.5 ? 1 : rng.range(0.75, 1.4);
    const width = even(aspect >= 1 ? side * aspect : side);
    const height = even(aspect >= 1 ? side : side / aspect);
    const short = Math.min(width, height);
    const movers = count === 1 ? (rng.next() < 0.75 ? 1 : 0) : rng.int(1, Math.min(2, count));
    const colors = rng.shuffle([...COLORS]).slice(0, count) as ColorName[];
    const shapes: SceneShape[] = [];
    const moves: ClipMove[] = [];
    for (let i = 0; i < count; i++) {
      const size = rng.range(0.16, 0.28) * short;
      const stretch = rng.range(0.9, 1.1);
      const rx = (size / 2) * stretch;
      const ry = size / 2 / stretch;
      const rgb = COLOR_RGB[colors[i]].map((c) => clamp255(c + rng.range(-18, 18))) as [number, number, number];
      const move = i < movers ? { shape: i, direction: rng.pick(DIRECTIONS), step: 0 } : undefined;
      let [x0, x1, y0, y1] = [rx + 1, width - rx - 1, ry + 1, height - ry - 1];
      if (move) {
        const horizontal = move.direction === 'left' || move.direction === 'right';
        const travel = rng.range(0.25, 0.5) * (horizontal ? width : height);
        move.step = travel / (frames - 1);
        // Start where the whole path stays inside.
        if (move.direction === 'right') x1 -= travel;
        if (move.direction === 'left') x0 += travel;
        if (move.direction === 'down') y1 -= travel;
        if (move.direction === 'up') y0 += travel;
        moves.push(move);
      }
      shapes.push({ kind: rng.pick(SHAPES), color: colors[i], rgb, cx: rng.range(x0, x1), cy: rng.range(y0, y1), rx, ry });
    }
    const scene: Scene = {
      width,
      height,
      background: rng.next() < 0.5 ? [255, 255, 255] : [rng.int(205, 255), rng.int(205, 255), rng.int(205, 255)],
      noise: rng.next() < 0.3 ? rng.range(2, 6) : 0,
      shapes,
      crisp: rng.next() < 0.25,
      format: 'png',
      quality: 90,
    };
    const clip: Clip = { scene, frames, moves, container };
    if (!overlapsInAnyFrame(clip)) return clip;
  }
}

function overlapsInAnyFrame(clip: Clip): boolean {
  const gap = 0.03 * Math.min(clip.scene.width, clip.scene.height);
  for (let t = 0; t < clip.frames; t++) {
    const s = clipFrame(clip, t).shapes;
    for (let i = 0; i < s.length; i++) {
      for (let j = i + 1; j < s.length; j++) {
        if (Math.abs(s[i].cx - s[j].cx) < s[i].rx + s[j].rx + gap && Math.abs(s[i].cy - s[j].cy) < s[i].ry + s[j].ry + gap) return true;
      }
    }
  }
  return false;
}

/** The bundled example clip (examples/assets/shapes.mp4): a red circle moving right past a blue square that stays, 6 frames. */
export function demoClip(): Clip {
  const shape = (kind: SceneShape['kind'], color: ColorName, cx: number, cy: number, r: number): SceneShape => ({ kind, color, rgb: [...COLOR_RGB[color]], cx, cy, rx: r, ry: r });
  return {
    scene: { width: 320, height: 240, background: [255, 255, 255], noise: 0, shapes: [shape('circle', 'red', 50, 70, 30), shape('square', 'blue', 230, 175, 32)], crisp: false, format: 'png', quality: 90 },
    frames: 6,
    moves: [{ shape: 0, direction: 'right', step: 30 }],
    container: 'mp4',
  };
}
