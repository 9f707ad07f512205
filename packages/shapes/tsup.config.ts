import { packageBuild } from '../../tsup.shared';

export default packageBuild(
  ['src/index.ts'],
  // The CLI is ESM only (top-level await) and has no types to publish.
  [{ entry: ['src/cli.ts'], format: ['esm'], sourcemap: true, target: 'es2022' }],
);
