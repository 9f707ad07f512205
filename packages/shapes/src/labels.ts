import { COLORS, insideShape, type Scene, SHAPES } from './scene.js';

export interface PatchLabels {
  /** Per patch, row-major: 0 = background, 1 + index in COLORS. */
  color: number[];
  /** Per patch: 0 = background, 1 + index in SHAPES. */
  shape: number[];
  /** Per patch: 1 where a shape's centre falls. */
  center: number[];
}

/**
 * What each patch of the model's `grid` x `grid` input shows, for the training's auxiliary loss:
 * the pictures are padded to a square (image_aspect_ratio 'pad'), so patches are laid over the
 * padded square. A patch takes the shape covering most of its 5x5 sample points, if it covers at
 * least a fifth of them.
 */
export function patchLabels(scene: Scene, grid: number): PatchLabels {
  const side = Math.max(scene.width, scene.height);
  // expand2square pastes the picture centred on the long axis (offset floor((long - short) / 2)).
  const ox = Math.floor((side - scene.width) / 2);
  const oy = Math.floor((side - scene.height) / 2);
  const cell = side / grid;
  const out: PatchLabels = { color: [], shape: [], center: [] };
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const hits = new Array<number>(scene.shapes.length).fill(0);
      for (let i = 0; i < 5; i++) {
        for (let j = 0; j < 5; j++) {
          const x = (c + (j + 0.5) / 5) * cell - ox;
          const y = (r + (i + 0.5) / 5) * cell - oy;
          const k = scene.shapes.findIndex((s) => insideShape(s, x, y));
          if (k >= 0) hits[k]++;
        }
      }
      let best = -1;
      hits.forEach((n, k) => {
        if (n >= 5 && (best < 0 || n > hits[best])) best = k;
      });
      const s = best >= 0 ? scene.shapes[best] : undefined;
      out.color.push(s ? 1 + COLORS.indexOf(s.color) : 0);
      out.shape.push(s ? 1 + SHAPES.indexOf(s.kind) : 0);
      const centred = scene.shapes.some((o) => Math.floor((o.cx + ox) / cell) === c && Math.floor((o.cy + oy) / cell) === r);
      out.center.push(centred ? 1 : 0);
    }
  }
  return out;
}
