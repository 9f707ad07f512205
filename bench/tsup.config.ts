import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

// Compiles the TypeScript benchmarks to <repo>/.cache/bench/*.js; packages stay external (their dist is used).
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export default defineConfig({
  entry: {
    llm: path.join(root, 'bench', 'llm.ts'),
    'convert-memory': path.join(root, 'bench', 'convert-memory.ts'),
    run: path.join(root, 'bench', 'run.ts'),
    prefusion: path.join(root, 'bench', 'prefusion.ts'),
    batch: path.join(root, 'bench', 'batch.ts'),
    serve: path.join(root, 'bench', 'serve.ts'),
    kv: path.join(root, 'bench', 'kv.ts'),
    'quant-prefill': path.join(root, 'bench', 'quant-prefill.ts'),
    isolation: path.join(root, 'bench', 'isolation.ts'),
    'follow-up': path.join(root, 'bench', 'follow-up.ts'),
    structured: path.join(root, 'bench', 'structured.ts'),
    soak: path.join(root, 'bench', 'soak.ts'),
    misbehave: path.join(root, 'bench', 'misbehave.ts'),
    live: path.join(root, 'bench', 'live.ts'),
    'browser-release': path.join(root, 'bench', 'browser-release.ts'),
  },
  outDir: path.join(root, '.cache', 'bench'),
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  skipNodeModulesBundle: true,
  splitting: false,
  clean: false,
  dts: false,
  silent: true,
});
