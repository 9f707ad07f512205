import { defineConfig } from 'vitest/config';

// The fuzz targets are not part of `npm test`: `npm run fuzz` runs them, FUZZ_SECONDS each (default 2).
export default defineConfig({
  test: {
    dir: 'fuzz',
    include: ['*.fuzz.ts'],
    testTimeout: (Number(process.env.FUZZ_SECONDS ?? 2) + 120) * 1000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
