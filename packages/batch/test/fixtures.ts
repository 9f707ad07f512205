import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

/** The built llava-mini CLI, as users run it (turbo builds pipeline and batch before these tests). */
export const CLI = path.resolve(__dirname, '../../pipeline/dist/cli.js');
export const ASSETS = path.resolve(__dirname, '../../../examples/assets');

const env = { ...process.env, FORCE_COLOR: '0', ORT_DISABLE_TELEMETRY: '1' };

export function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A CLI process left running (a worker, a collector), with its output gathered. */
export function spawnCli(...args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { child, exited, output: () => output };
}

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

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
