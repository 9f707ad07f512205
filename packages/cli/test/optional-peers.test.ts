// Every package installs light: the runtimes, sharp, ffmpeg, the tiny-checkpoint tool and the packages
// behind serve, batch/worker and eval are optional peers. A missing one is a one-line error that says
// what to install (`node --import ./block-packages.mjs` makes a package unresolvable, as if absent).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSETS, BIN, cli, userEnv } from './fixtures.js';

const BLOCK_HOOK = path.join(__dirname, 'block-packages.mjs');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-peers-'));
// An unconverted checkpoint: `ask` converts it in memory, so every stage's package is reached.
const model = path.join(tmp, 'hf');
beforeAll(() => expect(cli(['init-tiny', model]).code).toBe(0));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function without(blocked: string[], args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', BLOCK_HOOK, BIN, ...args], { encoding: 'utf8', env: { ...userEnv, LLAVA_MINI_BLOCK: blocked.join(','), ...env } });
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  return { code: r.status, stderr: r.stderr };
}

const needs = (command: string, pkg: string) => ({ code: 1, stderr: `llava-mini: 'llava-mini ${command}' needs ${pkg}, which is not installed: npm install ${pkg}\n` });

describe('a missing optional peer', () => {
  it('of the runtime: onnxruntime-node, sharp, ffmpeg', () => {
    const image = path.join(ASSETS, 'house.png');
    expect(without(['onnxruntime-node'], ['ask', '--model', model, '--image', image, '--prompt', 'x', '--device', 'cpu'])).toEqual({
      code: 1,
      stderr: expect.stringMatching(/^llava-mini: DEVICE_UNAVAILABLE: .*onnxruntime-node package is not installed.*npm install onnxruntime-node/),
    });
    expect(without(['sharp'], ['ask', '--model', model, '--image', image, '--prompt', 'x', '--device', 'cpu'])).toEqual({
      code: 1,
      stderr: expect.stringMatching(/^llava-mini: IMAGE: .*house\.png: decoding image files in Node needs the sharp package.*npm install sharp/),
    });
    const noFfmpeg = { PATH: '/nonexistent', FFMPEG_PATH: '', FFPROBE_PATH: '' };
    expect(without(['@ffmpeg-installer/ffmpeg', '@ffprobe-installer/ffprobe'], ['ask', '--model', model, '--video', path.join(ASSETS, 'clip.mp4'), '--prompt', 'x', '--device', 'cpu'], noFfmpeg)).toEqual({
      code: 1,
      stderr: expect.stringMatching(/^llava-mini: VIDEO: .*no ffprobe found: video input needs ffmpeg and ffprobe: run `npm install @ffmpeg-installer\/ffmpeg @ffprobe-installer\/ffprobe`/),
    });
  });

  it("of a command: init-tiny's tool, serve's server, batch's and worker's queue, eval's shapes world", () => {
    expect(without(['@llava-mini/tiny'], ['init-tiny', path.join(tmp, 'other')])).toEqual({
      code: 1,
      stderr: expect.stringMatching(/^llava-mini: INVALID_OPTION: init-tiny needs the @llava-mini\/tiny package/),
    });
    expect(without(['@llava-mini/server'], ['serve', '--model', model, '--port', '0'])).toEqual(needs('serve', '@llava-mini/server'));
    expect(without(['@llava-mini/batch'], ['batch', '--status'])).toEqual(needs('batch', '@llava-mini/batch'));
    expect(without(['@llava-mini/batch'], ['worker', '--help'])).toEqual(needs('worker', '@llava-mini/batch'));
    expect(without(['@llava-mini/shapes'], ['eval', '--count', '1'])).toEqual(needs('eval', '@llava-mini/shapes'));
  });

  it('leaves --help whole: every command is listed without loading its package', () => {
    const r = spawnSync(process.execPath, ['--import', BLOCK_HOOK, BIN, '--help'], {
      encoding: 'utf8',
      env: { ...userEnv, LLAVA_MINI_BLOCK: '@llava-mini/server,@llava-mini/batch,@llava-mini/shapes,@llava-mini/tiny,onnxruntime-node,onnxruntime-web,sharp' },
    });
    expect(r.status, r.stderr).toBe(0);
    for (const command of ['devices', 'init-tiny', 'convert', 'ask', 'chat', 'batch', 'worker', 'serve', 'eval']) expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });
});
