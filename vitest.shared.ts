import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // onnxruntime sessions use native threads; one worker per file keeps 2-core CI machines responsive.
    pool: 'forks',
    maxWorkers: 1,
  },
});
