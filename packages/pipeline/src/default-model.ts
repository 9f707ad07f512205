import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelFilesError } from '@llava-mini/core';

/** The bundled demo model's name (the repository's models/llava-mini-shapes). */
export const DEFAULT_MODEL = 'llava-mini-shapes';

/** The npm package that holds it: its own package, so a browser bundle of this one never carries it. */
const MODEL_PACKAGE = '@llava-mini/model-shapes';

// The CJS build has __dirname (and no import.meta), the ESM build import.meta.url.
const here = typeof __dirname === 'string' ? __dirname : path.dirname(fileURLToPath(import.meta.url));

/**
 * The folder of the bundled demo model (a tiny LLaVA-Mini trained on the shapes world, in the
 * Hugging Face layout, converted in memory when loaded), found by module resolution from this
 * package: `@llava-mini/model-shapes`, which the CLI depends on. Used when no model is named.
 */
export function defaultModelDir(): string {
  const require = createRequire(path.join(here, 'default-model.js'));
  let pkg: { modelDir: string };
  try {
    pkg = require(MODEL_PACKAGE) as { modelDir: string };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new ModelFilesError(MODEL_PACKAGE, `the bundled demo model is not installed (npm install ${MODEL_PACKAGE}); or pass a model folder (--model)`);
  }
  return pkg.modelDir;
}
