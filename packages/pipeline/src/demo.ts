import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError, type ProgressCallback } from '@llava-mini/core';
import type { TinyOptions } from '@llava-mini/tiny';
import { convertCheckpoint } from './convert.js';
import { MANIFEST_FILE, MANIFEST_VERSION } from './manifest.js';

/** Whether `dir` holds a model converted by this runtime's manifest version (an older one is made again). */
function currentVersion(dir: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')) as { version?: unknown }).version === MANIFEST_VERSION;
  } catch {
    return false;
  }
}

/**
 * A converted random-weight tiny model in `dir` (made once, reused while this runtime reads its
 * manifest version): for tests, benches and trying the runtime without a trained model. Its answers are noise.
 */
export async function ensureTinyModel(dir: string, options: TinyOptions & { onProgress?: ProgressCallback } = {}): Promise<string> {
  const { onProgress, ...tiny } = options;
  if (currentVersion(dir)) return dir;
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
