// The bundled demo model is found by module resolution (the @llava-mini/model-shapes package),
// wherever the process runs: the CLI's and the examples' default; what they answer with it is tested
// in packages/cli, and from packed tarballs by scripts/pack-install.mjs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultModelDir } from '../src/node.js';

describe('the default model', () => {
  it('is the model-shapes package, which the repository links as models/llava-mini-shapes', () => {
    const dir = defaultModelDir();
    expect(fs.realpathSync(dir)).toBe(fs.realpathSync(path.resolve(__dirname, '../../../models/llava-mini-shapes')));
    expect(fs.existsSync(path.join(dir, 'config.json'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
  });
});
