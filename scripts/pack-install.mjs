// The packages as a user meets them: `npm pack` every public package, check each tarball with the
// linters the TypeScript library world runs before publishing (publint, strict; and
// @arethetypeswrong/cli: ESM, CJS and types under node16 and bundler resolution), install the
// tarballs with onnxruntime-node and sharp in an empty folder outside the repository (npm's cache
// first, so it needs no network after `npm ci`), then ask the bundled model there with the CLI and
// run the model package's README snippet. Run after `npm run build`.
//   node scripts/pack-install.mjs [--keep]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'llava-mini-pack-'));
const keep = process.argv.includes('--keep');
const QUESTION = 'What color is the circle?';
const ANSWER = 'red';

class Failure extends Error {}
function fail(message) {
  throw new Failure(message);
}

/** Runs a command; its output is shown, and returned when `capture` is set. */
function run(cmd, args, { cwd = root, capture = false } = {}) {
  const r = spawnSync(cmd, args, { cwd, stdio: capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
  if (r.status !== 0) fail(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}) in ${cwd}`);
  return r.stdout;
}

const publicPackages = readdirSync(join(root, 'packages'))
  .map((name) => ({ dir: join(root, 'packages', name), pkg: JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => !pkg.private);

try {
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  for (const { dir, pkg } of publicPackages) {
    const [{ filename }] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd: dir, capture: true }));
    const tarball = join(tarballs, filename);
    console.log(`\n${pkg.name}: publint, attw`);
    // Every publint message fails, suggestions included (strict: warnings count as errors).
    const { messages } = await publint({ pack: { tarball: readFileSync(tarball).buffer }, strict: true });
    for (const m of messages) console.error(`  ${m.type}: ${formatMessage(m, pkg, { color: false })}`);
    if (messages.length) fail(`${pkg.name}: publint found ${messages.length} problem(s)`);
    run('npx', ['--no-install', 'attw', tarball, '--profile', 'node16', '--format', 'ascii', '--no-emoji']);
  }

  // The runtime peers at the versions this repository tested, which npm ci left in its cache.
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  const peers = ['onnxruntime-node', 'sharp'].map((name) => `${name}@${lock.packages[`node_modules/${name}`].version}`);
  const app = join(work, 'app');
  mkdirSync(app);
  run('npm', ['init', '-y'], { cwd: app, capture: true });
  const files = readdirSync(tarballs).map((f) => join(tarballs, f));
  console.log(`\ninstalling ${files.length} tarballs and ${peers.join(', ')} in ${app}`);
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...files, ...peers], { cwd: app });

  copyFileSync(join(root, 'examples/assets/shapes.png'), join(app, 'shapes.png'));
  console.log(`\n$ npx llava-mini ask --image shapes.png --prompt "${QUESTION}"`);
  const cliAnswer = run('npx', ['--no-install', 'llava-mini', 'ask', '--image', 'shapes.png', '--prompt', QUESTION], { cwd: app, capture: true }).trim();
  if (cliAnswer !== ANSWER) fail(`the CLI answered ${JSON.stringify(cliAnswer)}, not ${ANSWER}`);
  console.log(cliAnswer);

  // The model package's README snippet, as a user would paste it (it is plain JavaScript).
  const readme = readFileSync(join(root, 'packages/model-shapes/README.md'), 'utf8');
  const snippet = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (!snippet) fail('packages/model-shapes/README.md has no ts snippet');
  writeFileSync(join(app, 'snippet.mjs'), snippet);
  console.log('\n$ node snippet.mjs   # packages/model-shapes/README.md');
  const snippetAnswer = run(process.execPath, ['snippet.mjs'], { cwd: app, capture: true }).trim();
  if (snippetAnswer !== ANSWER) fail(`the README snippet printed ${JSON.stringify(snippetAnswer)}, not ${ANSWER}`);
  console.log(snippetAnswer);
  console.log(`\npack-install: ${publicPackages.length} packages lint clean; installed from their tarballs, they answer ${ANSWER}`);
} catch (err) {
  if (!(err instanceof Failure)) throw err;
  console.error(`pack-install: ${err.message}${keep ? '' : ' (rerun with --keep to keep the folder)'}`);
  process.exitCode = 1;
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}
