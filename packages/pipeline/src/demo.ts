import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError, type ProgressCallback } from '@llava-mini/core';
import type { TinyOptions } from '@llava-mini/tiny';
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
  // @llava-mini/tiny is an optional peer: a development tool, not needed to run a real model.
  const { writeTinyCheckpoint } = await import('@llava-mini/tiny').catch((err) => {
    throw new InvalidOptionError('a random-weight tiny model needs the @llava-mini/tiny package: run `npm install @llava-mini/tiny`', { cause: err });
  });
  // std 0.3 makes the random model's output depend on what it is shown (at 0.02 it repeats one token).
  await writeTinyCheckpoint(checkpoint, { std: 0.3, ...tiny });
  try {
    await convertCheckpoint(checkpoint, dir, { force: true, onProgress });
  } finally {
    fs.rmSync(checkpoint, { recursive: true, force: true });
  }
  return dir;
}
