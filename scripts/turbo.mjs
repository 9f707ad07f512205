// `turbo` for the root scripts, without its telemetry notice and its anonymous usage reports (the
// first run on a machine prints a banner; TURBO_TELEMETRY_DISABLED=1 turns both off). A script
// rather than `VAR=1 turbo ...` in package.json, so the scripts also run under Windows' cmd.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const turbo = createRequire(import.meta.url).resolve('turbo/bin/turbo');
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1' };
const r = spawnSync(process.execPath, [turbo, ...process.argv.slice(2)], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
