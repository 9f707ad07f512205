// One tiny random-weight model for every test file of this package (made once per run).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTinyModel } from '@llava-mini/pipeline/node';
import type { TestProject } from 'vitest/node';

export default async function setup(project: TestProject) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-model-'));
  project.provide('modelDir', await ensureTinyModel(path.join(root, 'tiny')));
  return () => fs.rmSync(root, { recursive: true, force: true });
}

declare module 'vitest' {
  export interface ProvidedContext {
    modelDir: string;
  }
}
