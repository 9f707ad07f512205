import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

export const ASSETS = path.resolve(__dirname, '../../../examples/assets');

/** `n` small distinct PNGs (different pixels, so each is really encoded). */
export async function writeImages(dir: string, n: number): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `img-${i}.png`);
    const c = (i * 37) % 256;
    await sharp({ create: { width: 24, height: 16, channels: 3, background: { r: c, g: 255 - c, b: (i * 91) % 256 } } }).png().toFile(f);
    files.push(f);
  }
  return files;
}

export function writeJsonl(file: string, lines: unknown[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

export function readJsonl(file: string): Record<string, any>[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** How many times each id appears. */
export function idCounts(lines: Record<string, unknown>[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of lines) m.set(String(l.id), (m.get(String(l.id)) ?? 0) + 1);
  return m;
}
