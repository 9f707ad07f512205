// Interrupted commands leave nothing behind: Ctrl-C stops convert, eval's data set and a video answer
// at once (exit 130) without a partial folder, and what a killed conversion left is removed next time.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { cli, spawnCli } from './fixtures.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-interrupt-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Ctrl-C and kills', () => {
  it('Ctrl-C during convert stops it at once and leaves no <out>.partial-<pid>', async () => {
    // Big enough that the conversion is still running when the signal comes.
    const hf = path.join(root, 'hf-big');
    await writeTinyCheckpoint(hf, { hiddenSize: 256, intermediateSize: 1024, numHiddenLayers: 12 });
    const out = path.join(root, 'big-onnx');
    const run = spawnCli(['convert', hf, '--out', out]);
    const partial = `${out}.partial-${run.child.pid}`;
    while (!fs.existsSync(partial) && run.child.exitCode === null) await tick(2);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.stderr()).toMatch(/^llava-mini: ABORTED: convert was stopped \(SIGINT\)/);
    expect(fs.existsSync(partial)).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('Ctrl-C while eval writes its data set leaves no partial data set in the temp folder', async () => {
    const tmp = fs.mkdtempSync(path.join(root, 'tmp-'));
    const run = spawnCli(['eval', '--count', '5000', '--seed', '4242', '--device', 'cpu'], { env: { TMPDIR: tmp } });
    const partial = path.join(tmp, `llava-mini-shapes-eval-pictures-seed4242-n5000.partial-${run.child.pid}`);
    while (!fs.existsSync(path.join(partial, 'images')) && run.child.exitCode === null) await tick(5);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('Ctrl-C while a video is read stops ask through its signal: exit 130, ffmpeg stopped, no temporary folder left', async () => {
    // 240 grey frames at 1 fps: 240 vision tokens, seconds of work for the tiny model.
    const ffmpeg = ((await import('@ffmpeg-installer/ffmpeg')) as unknown as { default: { path: string } }).default.path;
    const video = path.join(root, 'long.mkv');
    const made = spawnSync(ffmpeg, ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=c=gray:s=64x48:r=1:d=240', '-c:v', 'ffv1', video]);
    expect(made.status, String(made.stderr)).toBe(0);
    const tmp = fs.mkdtempSync(path.join(root, 'tmp-'));
    const run = spawnCli(['ask', '--model', inject('modelDir'), '--video', video, '--prompt', 'What happens?', '--device', 'cpu', '--max-new-tokens', '2'], { env: { TMPDIR: tmp } });
    // The frame-select script's folder exists while ffmpeg decodes.
    const selecting = () => fs.readdirSync(tmp).some((f) => f.startsWith('llava-mini-select-'));
    while (!selecting() && run.child.exitCode === null) await tick(5);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.stderr()).toMatch(/^llava-mini: ABORTED: /m);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('a partial folder a killed conversion left behind is removed by the next one', () => {
    const hf = path.join(root, 'hf');
    expect(cli(['init-tiny', hf]).code).toBe(0);
    const out = path.join(root, 'after-kill');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid; // a pid that has exited
    fs.mkdirSync(`${out}.partial-${dead}`);
    fs.writeFileSync(path.join(`${out}.partial-${dead}`, 'llm.onnx.data'), 'half a model');
    expect(cli(['convert', hf, '--out', out]).code).toBe(0);
    expect(fs.existsSync(`${out}.partial-${dead}`)).toBe(false);
  });
});
