// `llava-mini watch` as users run it: a stream runs, questions come on stdin, each answer is about
// the window at the moment it was asked, and equals the library's answer on exactly those frames.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { defaultModelDir, liveVideoFrames, LlavaMini } from '@llava-mini/pipeline/node';
import type { TimedFrame } from '@llava-mini/encoder';
import { describe, expect, it } from 'vitest';
import { ASSETS, BIN, cli, userEnv, waitFor } from './fixtures.js';

const CLIP = path.join(ASSETS, 'shapes.mp4'); // 6 s at 1 fps: a red circle moving right, a blue square
const SLOW = 120_000;

/** `llava-mini watch ...args` with stdin open for questions. */
function watch(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'watch', '--device', 'cpu', '--max-new-tokens', '6', ...args], { env: userEnv, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

describe('llava-mini watch', () => {
  it('answers about the last seconds of a stream, as the library does on those frames', async () => {
    const w = watch(['--video', CLIP, '--no-realtime', '--window', '3s', '--json']);
    await waitFor('the stream to end', () => w.stderr().includes('the stream ended'), SLOW);
    const q = 'How many shapes are there?';
    w.child.stdin.write(`${q}\n`);
    await waitFor('an answer', () => w.stdout().includes('\n'), SLOW);
    w.child.stdin.end();
    expect(await w.exited).toBe(0);
    const answer = JSON.parse(w.stdout().trim());
    expect(answer.window).toMatchObject({ frames: 3, from: 3, to: 5 });
    expect(answer.stats).toMatchObject({ sampled: 6, encoded: 6, dropped: 0 });
    // By meaning (the demo model counts clips at 100 %), and token for token with the library on the same frames.
    expect(answer.text).toBe('2');
    const frames: TimedFrame[] = [];
    for await (const f of liveVideoFrames(CLIP, { realtime: false })) if (f.time >= 3) frames.push(f);
    const model = await LlavaMini.fromPretrained(defaultModelDir(), { device: 'cpu' });
    try {
      expect((await model.ask({ frames }, q, { maxNewTokens: 6 }).done()).text).toBe(answer.text);
    } finally {
      await model.dispose();
    }
  }, SLOW);

  it('plays a file in real time: a question mid-stream sees only what has been shown, and stdin closing ends it', async () => {
    const w = watch(['--video', CLIP, '--window', '2s']);
    await waitFor('two frames', () => w.stderr().includes('watching'), SLOW);
    const asked = Date.now();
    w.child.stdin.write('What color is the circle?\n');
    await waitFor('an answer', () => w.stdout().includes('\n'), SLOW);
    w.child.stdin.end();
    expect(await w.exited).toBe(0);
    // The line: the answer, then the window it saw (at most the last 2 s, and not past what 6 s of real time showed).
    const m = /^(.+) \[(\d) frames?, 0:(\d\d\.\d)-0:(\d\d\.\d)\]\n$/.exec(w.stdout());
    expect(m, w.stdout()).not.toBeNull();
    const [, text, frames, , to] = m as RegExpExecArray;
    expect(text).toBe('red');
    expect(Number(frames)).toBeLessThanOrEqual(2);
    expect(Number(to)).toBeLessThan(5);
    // The stream was stopped with stdin, not played to its end.
    expect(w.stderr()).not.toContain('the stream ended');
    expect(Date.now() - asked).toBeLessThan(30_000);
  }, SLOW);

  it('refuses a bad source or window with one typed line', () => {
    const missing = cli(['watch', '--video', path.join(ASSETS, 'none.mp4'), '--device', 'cpu'], { input: 'What is this?\n' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^llava-mini: VIDEO: .*none\.mp4: file not found\n$/m);
    const window = cli(['watch', '--video', CLIP, '--window', 'ten'], { input: '' });
    expect({ code: window.code, stderr: window.stderr }).toEqual({ code: 1, stderr: "llava-mini: INVALID_OPTION: --window must be a duration > 0 such as 60, 90s, 2m or 1h, got 'ten'\n" });
  });
});
