#!/usr/bin/env node
// The `llava-mini` command. This file is committed (dist/ is built): npm links a workspace's bin at
// install time only if the target exists, so pointing `bin` at dist/cli.js would leave
// `npx llava-mini` unlinked after `npm ci` and send npx to the registry for a stranger's package.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Before onnxruntime-node loads: its telemetry crashes on command lines of about 32 KB or more.
if (!process.env.ORT_DISABLE_TELEMETRY) process.env.ORT_DISABLE_TELEMETRY = '1';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  process.stderr.write(`llava-mini: the CLI is not built yet (${fileURLToPath(cli)} is missing): run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
await import(cli.href);
