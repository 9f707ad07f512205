import sharp from 'sharp';
import type { Scene, SceneShape } from './scene.js';
import { Rng } from './scene.js';

const hex = (rgb: readonly number[]) => `#${rgb.map((c) => c.toString(16).padStart(2, '0')).join('')}`;

function shapeSvg(s: SceneShape): string {
  const fill = hex(s.rgb);
  if (s.kind === 'circle') return `<ellipse cx="${s.cx}" cy="${s.cy}" rx="${s.rx}" ry="${s.ry}" fill="${fill}"/>`;
  if (s.kind === 'square') return `<rect x="${s.cx - s.rx}" y="${s.cy - s.ry}" width="${2 * s.rx}" height="${2 * s.ry}" fill="${fill}"/>`;
  const pts = [
    [s.cx, s.cy - s.ry],
    [s.cx + s.rx, s.cy + s.ry],
    [s.cx - s.rx, s.cy + s.ry],
  ];
  return `<polygon points="${pts.map((p) => p.join(',')).join(' ')}" fill="${fill}"/>`;
}

/** The scene as an SVG document (what sharp rasterises). */
export function sceneSvg(scene: Scene): string {
  const rendering = scene.crisp ? ' shape-rendering="crispEdges"' : '';
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.width}" height="${scene.height}"${rendering}>` +
    `<rect width="100%" height="100%" fill="${hex(scene.background)}"/>` +
    scene.shapes.map(shapeSvg).join('') +
    '</svg>'
  );
}

/**
 * Render a scene to an encoded picture (PNG or JPEG, as the scene says), light Gaussian-ish noise
 * added per pixel when `scene.noise` > 0 (seeded by `noiseSeed`).
 */
export async function renderScene(scene: Scene, noiseSeed = 0): Promise<Buffer> {
  let img = sharp(Buffer.from(sceneSvg(scene))).removeAlpha();
  if (scene.noise > 0) {
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    const rng = new Rng(noiseSeed);
    for (let i = 0; i < data.length; i++) {
      // Sum of three uniforms: close enough to a Gaussian for picture noise.
      const n = (rng.next() + rng.next() + rng.next() - 1.5) * 2 * scene.noise;
      data[i] = Math.max(0, Math.min(255, Math.round(data[i] + n)));
    }
    img = sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } });
  }
  return scene.format === 'jpeg' ? img.jpeg({ quality: scene.quality }).toBuffer() : img.png().toBuffer();
}
