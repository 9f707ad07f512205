/**
 * The shapes world: seeded random scenes of 1-4 non-overlapping coloured shapes on a light
 * background. A scene is pure geometry in picture pixels; rendering and questions are derived.
 */
import { mulberry32 } from '@llava-mini/core';

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export type ShapeKind = (typeof SHAPES)[number];
export type ColorName = (typeof COLORS)[number];

/** Base RGB of each colour name; renders jitter around it. */
export const COLOR_RGB: Record<ColorName, readonly [number, number, number]> = {
  red: [215, 35, 35],
  green: [35, 160, 50],
  blue: [35, 75, 215],
  yellow: [235, 205, 25],
  purple: [135, 45, 175],
  orange: [245, 135, 25],
};

export interface SceneShape {
  kind: ShapeKind;
  color: ColorName;
  /** Fill actually drawn (the colour name's RGB with jitter). */
  rgb: [number, number, number];
  /** Centre, pixels. */
  cx: number;
  cy: number;
  /** Half of the bounding box's width and height, pixels. */
  rx: number;
  ry: number;
}

export interface Scene {
  width: number;
  height: number;
  background: [number, number, number];
  /** Standard deviation of the per-pixel noise added after rendering (0 = none). */
  noise: number;
  shapes: SceneShape[];
  /** Draw without antialiasing (crisp edges), as another renderer might. */
  crisp: boolean;
  format: 'png' | 'jpeg';
  /** JPEG quality when format is jpeg. */
  quality: number;
}

/** Seeded draws for scenes (core's mulberry32 underneath: enough for data, not for weights). */
export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    // Seed 0 stands for another word, as it always has here, so datasets made with it stay the same.
    this.next = mulberry32(seed >>> 0 || 0x9e3779b9);
  }
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

export interface SceneOptions {
  /** Number of shapes; default random 1..4. */
  count?: number;
  /** Square pictures only (default: a third are not square). */
  square?: boolean;
}

const clamp255 = (v: number) => Math.max(0, Math.min(255, Math.round(v)));

/** A random scene. Shapes never overlap (bounding boxes with a small gap) and lie fully inside. */
export function randomScene(rng: Rng, options: SceneOptions = {}): Scene {
  const side = rng.int(96, 400);
  const aspect = options.square || rng.next() < 0.67 ? 1 : rng.range(0.7, 1.45);
  const width = Math.round(aspect >= 1 ? side * aspect : side);
  const height = Math.round(aspect >= 1 ? side : side / aspect);
  const short = Math.min(width, height);
  const background: [number, number, number] =
    rng.next() < 0.5 ? [255, 255, 255] : [rng.int(205, 255), rng.int(205, 255), rng.int(205, 255)];
  const count = options.count ?? rng.int(1, 4);
  for (;;) {
    const shapes: SceneShape[] = [];
    let tries = 0;
    while (shapes.length < count && tries++ < 200) {
      const size = rng.range(0.14, 0.4 - 0.04 * (count - 1)) * short;
      // Slightly different proportions than a perfect square / circle / equilateral triangle.
      const stretch = rng.range(0.9, 1.1);
      const rx = (size / 2) * stretch;
      const ry = size / 2 / stretch;
      const cx = rng.range(rx + 1, width - rx - 1);
      const cy = rng.range(ry + 1, height - ry - 1);
      const gap = 0.03 * short;
      if (shapes.some((o) => Math.abs(o.cx - cx) < o.rx + rx + gap && Math.abs(o.cy - cy) < o.ry + ry + gap)) continue;
      const color = rng.pick(COLORS);
      const base = COLOR_RGB[color];
      const rgb = base.map((c) => clamp255(c + rng.range(-18, 18))) as [number, number, number];
      shapes.push({ kind: rng.pick(SHAPES), color, rgb, cx, cy, rx, ry });
    }
    if (shapes.length === count) {
      return {
        width,
        height,
        background,
        noise: rng.next() < 0.3 ? rng.range(2, 8) : 0,
        shapes,
        crisp: rng.next() < 0.25,
        format: rng.next() < 0.35 ? 'jpeg' : 'png',
        quality: rng.int(75, 95),
      };
    }
  }
}

/** Whether the point (x, y), in pixels, is inside the shape as drawn. */
export function insideShape(s: SceneShape, x: number, y: number): boolean {
  const dx = (x - s.cx) / s.rx;
  const dy = (y - s.cy) / s.ry;
  if (s.kind === 'circle') return dx * dx + dy * dy <= 1;
  if (s.kind === 'square') return Math.abs(dx) <= 1 && Math.abs(dy) <= 1;
  // Triangle pointing up: apex (0, -1), base from (-1, 1) to (1, 1).
  return dy <= 1 && dy >= -1 && Math.abs(dx) <= (dy + 1) / 2;
}

/**
 * The bundled example picture (examples/assets/shapes.png): a red circle on the left, a blue square
 * on the right, a green triangle at the bottom right of the middle (clear of it, so every shape has a side), on white.
 */
export function demoScene(): Scene {
  const shape = (kind: SceneShape['kind'], color: ColorName, cx: number, cy: number, r: number): SceneShape => ({
    kind,
    color,
    rgb: [...COLOR_RGB[color]],
    cx,
    cy,
    rx: r,
    ry: r,
  });
  return {
    width: 320,
    height: 240,
    background: [255, 255, 255],
    noise: 0,
    shapes: [shape('circle', 'red', 70, 80, 38), shape('square', 'blue', 245, 85, 35), shape('triangle', 'green', 205, 180, 40)],
    crisp: false,
    format: 'png',
    quality: 90,
  };
}
