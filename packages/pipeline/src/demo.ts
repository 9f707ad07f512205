import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ProgressCallback } from '@llava-mini/core';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import { convertCheckpoint } from './convert.js';
import { MANIFEST_FILE } from './manifest.js';

/**
 * A converted random-weight tiny model in `dir` (made once, reused after): what the examples and
 * the README's first command run until a trained demo model ships. Its answers are noise.
 */
export async function ensureTinyModel(dir: string, options: TinyOptions & { onProgress?: ProgressCallback } = {}): Promise<string> {
  const { onProgress, ...tiny } = options;
  if (fs.existsSync(path.join(dir, MANIFEST_FILE))) return dir;
  const checkpoint = `${dir}.hf`;
  // std 0.3 makes the random model's output depend on what it is shown (at 0.02 it repeats one token).
  await writeTinyCheckpoint(checkpoint, { std: 0.3, ...tiny });
  try {
    await convertCheckpoint(checkpoint, dir, { force: true, onProgress });
  } finally {
    fs.rmSync(checkpoint, { recursive: true, force: true });
  }
  return dir;
}
