// First contact, as a new user on a CPU machine meets it: the root scripts print no turbo telemetry
// banner, and the public entry's inputs are typed (what the CLI says is in packages/cli/test).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '../../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-first-contact-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// A user's shell: none of the switches CI exports.
const { TURBO_TELEMETRY_DISABLED: _a, DO_NOT_TRACK: _b, ORT_DISABLE_TELEMETRY: _c, LLAVA_MINI_DEBUG: _d, ...userEnv } = process.env;

describe('first contact', () => {
  it("the root scripts run turbo without its telemetry banner (a machine's first run prints it)", () => {
    // A fresh turbo config folder is a machine turbo has never run on.
    const run = (args: string[]) => {
      const env = { ...userEnv, TURBO_CONFIG_DIR_PATH: fs.mkdtempSync(path.join(tmp, 'turbo-')) };
      const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', env });
      expect(r.status, r.stderr).toBe(0);
      return `${r.stdout}${r.stderr}`;
    };
    // turbo itself prints it (so this test can fail) ...
    expect(run([path.join(ROOT, 'node_modules/turbo/bin/turbo'), 'ls'])).toMatch(/collects completely anonymous telemetry/);
    // ... and scripts/turbo.mjs, which every root script uses, does not.
    expect(run(['scripts/turbo.mjs', 'ls'])).not.toMatch(/telemetry/i);
    const scripts: Record<string, string> = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts;
    const bare = Object.entries(scripts).filter(([, cmd]) => /(^|[;&|]\s*)(npx\s+)?turbo\s/.test(cmd));
    expect(bare).toEqual([]);
  });

  it('npm commands print no warning about the project\'s npm config (an .npmrc key npm 11 deprecates)', () => {
    const r = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: ROOT, encoding: 'utf8', env: userEnv });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('"llava-mini-monorepo"');
    expect(r.stderr).not.toMatch(/npm warn/i);
  });

  it('one name for each thing, and results hold what the README documents, no internals', async () => {
    const entry = await import('../src/node.js');
    for (const old of ['LlavaChat', 'LlavaMiniModel', 'LlavaMiniPipeline']) expect(Object.keys(entry)).not.toContain(old);
    expect(entry.Conversation).toBeTypeOf('function');
    const model = await entry.LlavaMini.fromPretrained(await entry.ensureTinyModel(path.join(tmp, 'model')), { device: 'cpu' });
    try {
      const r = await model.ask(path.join(ROOT, 'examples/assets/house.png'), 'What is this?', { maxNewTokens: 2 }).done();
      expect(Object.keys(r).sort()).toEqual(['finishReason', 'headerTokens', 'ids', 'llmInputTokens', 'promptTokenIds', 'stats', 'text', 'timings']);
      // In the README's order, which is the CLI's --json order too.
      const timings = ['inputMs', 'encoderMs', 'compressorMs', 'embedMs', 'prefusionMs', 'timeToFirstTokenMs', 'prefillTokensPerSecond', 'decodeTokensPerSecond', 'totalMs'];
      expect(Object.keys(r.timings)).toEqual(timings);
      const chat = model.chat(path.join(ROOT, 'examples/assets/house.png'));
      expect(chat).toBeInstanceOf(entry.Conversation);
      expect(Object.keys(await chat.ask('And?', { maxNewTokens: 1 }).done()).sort()).toEqual(Object.keys(r).sort());
      chat.dispose();
    } finally {
      await model.dispose();
    }
  });

  it('ask and chat take the platform input type, not unknown: tsc refuses a wrong input or option', () => {
    // A user's file beside the repository's node_modules, importing the built packages by name.
    const program = (checked: boolean) => `import { LlavaMini } from '@llava-mini/pipeline';
import { LlavaMini as WebLlavaMini } from '@llava-mini/pipeline/web';
export async function use(node: LlavaMini, web: WebLlavaMini, frame: ImageData) {
  await node.ask('photo.jpg', 'q').done();
  await node.ask(['a.png', Buffer.alloc(1)], 'q', { maxNewTokens: 8, seed: 1 }).done();
  await node.ask({ video: 'clip.mp4' }, 'q').done();
  await node.chat().ask('q').done();
  await web.ask(frame, 'q').done();
  ${checked ? '// @ts-expect-error' : ''}
  node.ask(42, 'q');
  ${checked ? '// @ts-expect-error' : ''}
  node.chat({ vide: 'clip.mp4' });
  ${checked ? '// @ts-expect-error' : ''}
  node.ask('photo.jpg', 'q', { max_new_tokens: 8 });
  ${checked ? '// @ts-expect-error' : ''}
  web.ask(Buffer.alloc(1), 'q');
}
`;
    const dir = path.join(ROOT, '.cache', `first-contact-${process.pid}`);
    fs.mkdirSync(dir, { recursive: true });
    try {
      // One program for both files (tsc's lib files are read once).
      const files = [false, true].map((checked) => {
        const file = path.join(dir, checked ? 'checked.ts' : 'unchecked.ts');
        fs.writeFileSync(file, program(checked));
        return file;
      });
      const options = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, types: ['node'], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'] };
      const checker = ts.createProgram(files, options);
      const lines = (file: string) =>
        ts
          .getPreEmitDiagnostics(checker)
          .filter((d) => path.resolve(d.file?.fileName ?? '') === file)
          .map((d) => `${(d.file?.getLineAndCharacterOfPosition(d.start ?? 0).line ?? -2) + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
      // Without the markers, exactly the four wrong calls are errors; with them, nothing is.
      expect(lines(files[0]).map((e) => Number(e.split(':')[0]))).toEqual([10, 12, 14, 16]);
      expect(lines(files[1])).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
