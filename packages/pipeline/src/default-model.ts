import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelFilesError } from '@llava-mini/core';

/** The trained demo model's folder name under the repository's models/. */
export const DEFAULT_MODEL = 'llava-mini-shapes';

// The CJS build has __dirname (and no import.meta), the ESM build import.meta.url.
const here = typeof __dirname === 'string' ? __dirname : path.dirname(fileURLToPath(import.meta.url));

/**
 * The folder of the bundled demo model (models/llava-mini-shapes: a tiny LLaVA-Mini trained on the
 * shapes world, in the Hugging Face layout, converted in memory when loaded). Found by walking up
 * from this module to the repository root; used when no model is named.
 */
export function defaultModelDir(): string {
  for (let dir = here; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'models', DEFAULT_MODEL);
    if (fs.existsSync(path.join(candidate, 'config.json'))) return candidate;
    if (path.dirname(dir) === dir) break;
  }
  throw new ModelFilesError(`models/${DEFAULT_MODEL}`, `the bundled demo model was not found above ${here}; pass a model folder (--model)`);
}
