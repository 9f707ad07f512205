import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';

const roots: string[] = [];

/** A fresh temp folder, removed when the test file ends. */
export function tempDir(label = 'tiny'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `llava-mini-${label}-`));
  roots.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of roots.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** Every file of a folder with its bytes, for byte-identity checks. */
export function folderBytes(dir: string): Map<string, Buffer> {
  return new Map(
    fs
      .readdirSync(dir)
      .sort()
      .map((f) => [f, fs.readFileSync(path.join(dir, f))]),
  );
}
