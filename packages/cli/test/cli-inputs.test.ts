// Hard inputs through the CLI as users run it (the committed bin shim): each one a typed one-line
// error or the right answer, never a stack trace, a crash or a half-written folder.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ASSETS, BIN, cli as run } from './fixtures.js';

const IMAGE = path.join(ASSETS, 'house.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-inputs-'));
const model = inject('modelDir');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cli = (args: string[], input = '', env: Record<string, string> = {}) => run(args, { input, env });

/** The failure is exactly one stderr line `llava-mini: CODE: ...` matching `message`, exit 1, no stack. */
function expectOneLine(r: ReturnType<typeof cli>, code: string, message: RegExp) {
  expect({ exit: r.code, stderr: r.stderr }).toEqual({ exit: 1, stderr: expect.stringMatching(new RegExp(`^llava-mini: ${code}: `)) });
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(message);
}

const ask = (...extra: string[]) => ['ask', '--model', model, '--image', IMAGE, '--json', '--max-new-tokens', '3', '--device', 'cpu', ...extra];

describe('the CLI on hard inputs', () => {
  it('survives a command line over 32 KB (onnxruntime telemetry off) and leaves no mat-debug log', () => {
    // Nine images with ~3.9 KB paths: the shell glob of many photos that used to end in SIGSEGV.
    let dir = path.join(root, 'deep');
    while (dir.length < 3800) dir = path.join(dir, 'd'.repeat(200));
    fs.mkdirSync(dir, { recursive: true });
    const images = Array.from({ length: 9 }, (_, i) => {
      const p = path.join(dir, `photo-${i}.png`);
      fs.copyFileSync(IMAGE, p);
      return p;
    });
    expect(images.join(' ').length).toBeGreaterThan(32 * 1024);
    const r = cli(['ask', '--model', model, '--image', ...images, '--prompt', 'Which is best?', '--json', '--max-new-tokens', '2', '--device', 'cpu']);
    expect({ code: r.code, signal: r.signal, stderr: r.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(JSON.parse(r.stdout).tokenIds.length).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(os.tmpdir(), `mat-debug-${r.pid}.log`))).toBe(false);
    // A ~40 KB --prompt: the sessions are made (with that command line) before the prompt is measured.
    const long = cli(ask('--prompt', 'What is this? '.repeat(3000)));
    expect(long.signal).toBeNull();
    expectOneLine(long, 'PROMPT_TOO_LONG', /context window holds 8192/);
    expect(fs.existsSync(path.join(os.tmpdir(), `mat-debug-${long.pid}.log`))).toBe(false);
  });

  it('reads a long prompt from --prompt-file, or from stdin with -, as --prompt would', () => {
    const question = 'What is in this picture?\nDescribe the walls, the roof and the door.';
    const file = path.join(root, 'question.txt');
    fs.writeFileSync(file, `${question}\n`);
    const direct = JSON.parse(cli(ask('--prompt', question)).stdout);
    const fromFile = JSON.parse(cli(ask('--prompt-file', file)).stdout);
    const fromStdin = JSON.parse(cli(ask('--prompt-file', '-'), `${question}\n`).stdout);
    expect(fromFile.promptTokenIds).toEqual(direct.promptTokenIds);
    expect(fromStdin.promptTokenIds).toEqual(direct.promptTokenIds);
    expect(fromStdin.tokenIds).toEqual(direct.tokenIds);
    expectOneLine(cli(ask('--prompt-file', path.join(root, 'none.txt'))), 'FILE', /none\.txt: open failed: does not exist/);
    expectOneLine(cli(ask('--prompt-file', root)), 'FILE', /is a folder, not a file/);
    expectOneLine(cli(ask('--prompt-file', '-'), '\n'), 'INVALID_OPTION', /prompt from stdin is empty/);
    expectOneLine(cli(ask('--prompt', 'x', '--prompt-file', file)), 'INVALID_OPTION', /not both/);
    expectOneLine(cli(ask()), 'INVALID_OPTION', /--prompt TEXT or --prompt-file/);
  });

  it("rejects empty and non-decimal numbers instead of reading '' as 0", () => {
    for (const [flag, value] of [['--max-new-tokens', ''], ['--seed', ''], ['--seed', ' '], ['--top-k', '0x10'], ['--max-frames', '1e3'], ['--max-new-tokens', '2.5']]) {
      expectOneLine(cli(ask('--prompt', 'x', flag, value)), 'INVALID_OPTION', new RegExp(`${flag} must be an integer, got "${value}"`));
    }
    expectOneLine(cli(ask('--prompt', 'x', '--temperature', '')), 'INVALID_OPTION', /--temperature must be a number/);
    // The other commands read their numbers the same way (eval, batch and serve used to take '' as 0 and 0x10 as 16).
    const other: [string[], string, string][] = [
      [['eval', '--count', '1'], '--seed', ''],
      [['eval', '--count', '1'], '--limit', ' '],
      [['init-tiny', path.join(root, 'never')], '--seed', ''],
      [['batch', '--model', model, '--input', IMAGE, '--output', path.join(root, 'never.jsonl')], '--seed', ''],
      [['batch', '--model', model, '--input', IMAGE, '--output', path.join(root, 'never.jsonl')], '--backoff', ''],
      [['serve', '--model', model], '--port', '0x10'],
      [['convert', model, '--out', path.join(root, 'never')], '--context', ''],
    ];
    for (const [args, flag, value] of other) {
      expectOneLine(cli([...args, flag, value]), 'INVALID_OPTION', new RegExp(`${flag} must be an integer.*, got "${value}"`));
    }
    expect(fs.existsSync(path.join(root, 'never'))).toBe(false);
  });

  it('file-system errors are one line naming the path: --force onto a file, --out under a file, init-tiny onto a file', () => {
    const hf = path.join(root, 'hf');
    expect(cli(['init-tiny', hf]).code).toBe(0);
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, 'keep me');
    expectOneLine(cli(['convert', hf, '--out', file, '--force']), 'FILE', /a-file: is a file, not a folder/);
    expectOneLine(cli(['convert', hf, '--out', path.join(file, 'model')]), 'FILE', /a-file: is a file, so .* cannot be created under it/);
    expectOneLine(cli(['init-tiny', file]), 'FILE', /a-file: is a file, not a folder/);
    // A folder with something in it (a real checkpoint, say) keeps its weights unless --force.
    const real = path.join(root, 'real-checkpoint');
    fs.mkdirSync(real);
    fs.writeFileSync(path.join(real, 'model.safetensors'), 'real weights');
    expectOneLine(cli(['init-tiny', real]), 'INVALID_OPTION', /real-checkpoint already exists and is not empty; pass --force/);
    expect(fs.readFileSync(path.join(real, 'model.safetensors'), 'utf8')).toBe('real weights');
    expect(cli(['init-tiny', real, '--force']).code).toBe(0);
    expect(fs.statSync(path.join(real, 'model.safetensors')).size).toBeGreaterThan(100_000);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
    // A manifest that is a folder: an untyped EISDIR inside the library, still one line.
    const odd = path.join(root, 'odd-model');
    fs.mkdirSync(path.join(odd, 'manifest.json'), { recursive: true });
    const r = cli(['ask', '--model', odd, '--image', IMAGE, '--prompt', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^llava-mini: [A-Z_]+: .*manifest\.json/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    // LLAVA_MINI_DEBUG=1 adds the stack for a bug report.
    expect(cli(['ask', '--model', odd, '--image', IMAGE, '--prompt', 'x'], '', { LLAVA_MINI_DEBUG: '1' }).stderr).toMatch(/\n\s+at /);
    expect(fs.readdirSync(root).filter((f) => /partial|\.old-/.test(f))).toEqual([]);
    // An output under a file: named as the path asked for (not a temporary name the clean-up then
    // hid behind its own ENOTDIR), and refused before the work, not after it.
    const answers = cli(['eval', '--count', '1', '--answers', path.join(file, 'answers.jsonl')]);
    expectOneLine(answers, 'FILE', /a-file: is a file, so .*answers\.jsonl cannot be written under it/);
    expect(answers.stdout).toBe('');
    const jobs = path.join(root, 'jobs.jsonl');
    fs.writeFileSync(jobs, `${JSON.stringify({ id: 1, image: IMAGE, question: 'x' })}\n`);
    expectOneLine(cli(['batch', '--model', model, '--input', jobs, '--output', path.join(file, 'out.jsonl')]), 'FILE', /a-file: mkdir failed: is a file, not a folder/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });

  it.runIf(process.platform === 'linux')('a folder mkdir cannot make (under /proc) is an error, not an endless loop', () => {
    // Node's recursive mkdir retries forever where mkdir says ENOENT under a folder that exists.
    const hf = path.join(root, 'hf');
    if (!fs.existsSync(hf)) expect(cli(['init-tiny', hf]).code).toBe(0);
    const timed = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
    for (const args of [['convert', hf, '--out', '/proc/llava-mini-test/model'], ['init-tiny', '/proc/llava-mini-test']]) {
      const r = timed(args);
      expect({ args, signal: r.signal, code: r.status }).toEqual({ args, signal: null, code: 1 });
      expect(r.stderr).toMatch(/^llava-mini: FILE: \/proc\/llava-mini-test: mkdir failed: does not exist \(ENOENT\)\n$/);
    }
  });

  it('a config value the runtime does not take names the file it is in (config.json, or the manifest)', () => {
    const hf = path.join(root, 'hf-bad-config');
    expect(cli(['init-tiny', hf]).code).toBe(0);
    const configFile = path.join(hf, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(configFile, 'utf8')), num_hidden_layers: '2' }));
    const message = (file: string) => new RegExp(`^llava-mini: UNSUPPORTED_CONFIG: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: config 'num_hidden_layers': expected a positive integer, got "2"`);
    expectOneLine(cli(['convert', hf, '--out', path.join(root, 'bad-config-onnx')]), 'UNSUPPORTED_CONFIG', message(configFile));
    expectOneLine(cli(['ask', '--model', hf, '--image', IMAGE, '--prompt', 'x']), 'UNSUPPORTED_CONFIG', message(configFile));
    const converted = path.join(root, 'bad-manifest-config');
    fs.cpSync(model, converted, { recursive: true });
    const manifestFile = path.join(converted, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, config: { ...manifest.config, num_hidden_layers: '2' } }));
    expectOneLine(cli(['ask', '--model', converted, '--image', IMAGE, '--prompt', 'x', '--device', 'cpu']), 'UNSUPPORTED_CONFIG', message(manifestFile));
    expect(fs.existsSync(path.join(root, 'bad-config-onnx'))).toBe(false);
  });

  it('the committed bin shim says how to build when dist/ is missing', () => {
    const pkg = path.join(root, 'unbuilt', 'packages', 'cli');
    fs.mkdirSync(path.join(pkg, 'bin'), { recursive: true });
    fs.copyFileSync(BIN, path.join(pkg, 'bin', 'llava-mini.js'));
    const r = spawnSync(process.execPath, [path.join(pkg, 'bin', 'llava-mini.js'), 'devices'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^llava-mini: the CLI is not built yet .* run `npm run build` in /);
  });
});
