import { defineConfig } from 'tsup';

// A command, not a library: ESM only (top-level await), no types to publish. `convert` runs in a
// worker thread loaded from a file beside the CLI; each command's code is its own chunk, loaded when
// that command runs, so `llava-mini --help` loads no runtime.
export default defineConfig({
  entry: { cli: 'src/cli.ts', 'convert-worker': 'src/convert-worker.ts' },
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'es2022',
});
