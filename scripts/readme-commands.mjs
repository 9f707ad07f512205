// Runs a README's shell commands exactly as written, so CI proves them: every ```sh block that
// follows a `<!-- ci: run -->` line, one line at a time, with bash in the repository root.
//   node scripts/readme-commands.mjs [README.md]
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const file = process.argv[2] ?? 'README.md';
const text = readFileSync(file, 'utf8');
const blocks = [...text.matchAll(/<!-- ci: run(?: clean=([^ ]+))? -->\s*```sh\n([\s\S]*?)```/g)];
if (blocks.length === 0) {
  console.error(`${file}: no \`<!-- ci: run -->\` sh blocks`);
  process.exit(1);
}
for (const [, clean, body] of blocks) {
  // Paths the block creates, removed first so that CI can run twice (clean=a,b in the marker).
  for (const p of clean?.split(',') ?? []) rmSync(p, { recursive: true, force: true });
  for (const line of body.split('\n')) {
    if (!line.trim() || line.trim().startsWith('#')) continue;
    console.log(`\n$ ${line}`);
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', line], { stdio: 'inherit' });
    if (r.status !== 0) {
      console.error(`\n${file}: this command failed (exit ${r.status ?? r.signal}):\n  ${line}`);
      process.exit(1);
    }
  }
  for (const p of clean?.split(',') ?? []) rmSync(p, { recursive: true, force: true });
}
