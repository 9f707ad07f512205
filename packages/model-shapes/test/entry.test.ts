// The package's one promise: both entries name the same folder, and it holds a whole checkpoint in
// the Hugging Face layout (what `--model` and fromPretrained read).
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelDir } from '../index.js';

describe('@llava-mini/model-shapes', () => {
  it('ESM and CJS give the same folder, holding the config, weights and tokenizer', () => {
    const cjs = createRequire(import.meta.url)('../index.cjs') as { modelDir: string };
    expect(cjs.modelDir).toBe(modelDir);
    for (const file of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      expect(fs.statSync(path.join(modelDir, file)).size, file).toBeGreaterThan(0);
    }
    const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
    expect(config.hidden_size).toBeGreaterThan(0);
    // The weights' header names tensors; a truncated or LFS-pointer file would not parse.
    const bytes = fs.readFileSync(path.join(modelDir, 'model.safetensors'));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    expect(Object.keys(header).length).toBeGreaterThan(10);
  });
});
