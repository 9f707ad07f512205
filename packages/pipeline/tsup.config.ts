import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Plugin } from 'esbuild';
import type { Options } from 'tsup';
import { packageBuild } from '../../tsup.shared';

/**
 * The web entry's grammar engine (src/grammar-engine.ts) is @mlc-ai/web-xgrammar bundled here: its
 * file is a UMD bundle in a "type": "module" package, which a bundler would run as ESM (its exports
 * then land on a global) and whose Node branch imports 'module' and requires 'url', names a browser
 * bundler cannot resolve. Read as the CommonJS it is, with the 'module' import (reached only under
 * Node) taken out, it bundles as plain browser code.
 */
const xgrammarForBrowsers: Plugin = {
  name: 'xgrammar-for-browsers',
  setup(build) {
    build.onResolve({ filter: /^@mlc-ai\/web-xgrammar$/ }, (args) => ({ path: args.path, namespace: 'xgrammar' }));
    build.onLoad({ filter: /.*/, namespace: 'xgrammar' }, (args) => {
      const file = createRequire(__filename).resolve(args.path);
      const code = fs.readFileSync(file, 'utf8');
      if (!code.includes("await import('module')")) throw new Error(`${file}: its Node branch changed; check this plugin against the new version`);
      return { contents: code.replace("await import('module')", '{}'), loader: 'js', resolveDir: path.dirname(file) };
    });
  },
};

export default (packageBuild(['src/index.ts', 'src/node.ts', 'src/web.ts']) as Options[]).map((options): Options => ({
  ...options,
  noExternal: ['@mlc-ai/web-xgrammar'],
  esbuildPlugins: [xgrammarForBrowsers],
}));
