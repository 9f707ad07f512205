// The bundled demo model is found from the package, wherever the process runs (the CLI's and the
// examples' default; what they answer with it is tested in packages/cli).
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultModelDir } from '../src/node.js';

describe('the default model', () => {
  it('is models/llava-mini-shapes', () => {
    expect(defaultModelDir()).toBe(path.resolve(__dirname, '../../../models/llava-mini-shapes'));
  });
});
