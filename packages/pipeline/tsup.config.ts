import { packageBuild } from '../../tsup.shared';

export default packageBuild(
  ['src/index.ts', 'src/node.ts', 'src/web.ts'],
  // The CLI is ESM only (top-level await) and has no types to publish; `convert` runs in a worker.
  [{ entry: { cli: 'src/cli.ts', 'convert-worker': 'src/cli/convert-worker.ts' }, format: ['esm'], sourcemap: true, target: 'es2022' }],
);
