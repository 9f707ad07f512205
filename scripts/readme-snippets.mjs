// Proves the TypeScript snippets of every README. A README's ```ts blocks are one program, in order
// (later blocks use what earlier ones made). Every program is type-checked against the built
// packages; one whose first block follows a `<!-- ci: run -->` line is also run, in a scratch
// folder holding what the snippets name: ./tiny-hf (`llava-mini init-tiny`), ./tiny-onnx (converted),
// photo.png and clip.mp4 (examples/assets). A snippet that misses an import or names a renamed API
// fails CI.   node scripts/readme-snippets.mjs
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const ts = require('typescript');
const out = resolve('.cache/readme-snippets');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const readmes = ['README.md', ...readdirSync('packages').map((p) => join('packages', p, 'README.md')).filter(existsSync)];
const programs = [];
for (const file of readmes) {
  const blocks = [...readFileSync(file, 'utf8').matchAll(/(<!-- ci: run -->\s*)?```ts\n([\s\S]*?)```/g)];
  if (!blocks.length) continue;
  const name = file === 'README.md' ? 'root' : file.split('/')[1];
  // `export {}` makes each program a module (top-level await, nothing shared between READMEs).
  const code = `export {};\n${blocks.map((b) => b[2]).join('\n')}`;
  writeFileSync(join(out, `${name}.ts`), code);
  programs.push({ file, name, code, run: Boolean(blocks[0][1]) });
}
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: { target: 'es2022', module: 'esnext', moduleResolution: 'bundler', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], lib: ['es2022', 'dom'] },
    include: ['*.ts'],
  }),
);
console.log(`type-checking the snippets of ${programs.length} READMEs`);
run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(out, 'tsconfig.json')]);

const scratch = join(out, 'run');
mkdirSync(scratch);
const cli = resolve('packages/cli/bin/llava-mini.js');
run(process.execPath, [cli, 'init-tiny', 'tiny-hf'], scratch);
run(process.execPath, [cli, 'convert', 'tiny-hf', '--out', 'tiny-onnx'], scratch);
copyFileSync('examples/assets/house.png', join(scratch, 'photo.png'));
copyFileSync('examples/assets/clip.mp4', join(scratch, 'clip.mp4'));
for (const p of programs.filter((x) => x.run)) {
  const file = join(out, `${p.name}.mjs`);
  writeFileSync(file, ts.transpileModule(p.code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } }).outputText);
  console.log(`\nrunning the snippets of ${p.file}`);
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit', cwd: scratch });
  if (r.status !== 0) {
    console.error(`${p.file}: its snippets failed (exit ${r.status ?? r.signal}); the program is ${file}`);
    process.exit(1);
  }
}
