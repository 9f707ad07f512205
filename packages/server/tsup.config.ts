import { defineConfig } from 'tsup';

// As every package (tsup.shared.ts), plus worker.ts: the worker threads' entry, loaded from a file
// beside the library through import.meta.url, which tsup's shims make work in the CJS build too.
export default defineConfig({ entry: ['src/index.ts', 'src/worker.ts'], format: ['esm', 'cjs'], dts: true, sourcemap: true, clean: true, target: 'es2022', shims: true });
