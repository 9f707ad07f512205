// Videos the reference handles that a plain ffmpeg pipe gets wrong: repeated frame indices (short or
// low-fps clips) and rotation metadata (every portrait phone video).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyModel, LlavaMini, resolveNodeInput } from '../src/node.js';
import { decodeFrames, frameIndices, probeVideo } from '@llava-mini/encoder/node';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-video-inputs-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let ffmpeg: string;

function encode(out: string, raw: Buffer, w: number, h: number, fps: number, codec: string[]) {
  const r = spawnSync(ffmpeg, ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${w}x${h}`, '-r', String(fps), '-i', 'pipe:0', ...codec, out], { input: raw });
  expect(r.status, String(r.stderr)).toBe(0);
}

beforeAll(async () => {
  ffmpeg = ((await import('@ffmpeg-installer/ffmpeg')) as unknown as { default: { path: string } }).default.path;
});

describe('video inputs', () => {
  it('keeps repeated frame indices: 8 frames at 1 fps sample [0,1,2,3,4,4,5,6] and the model gets 8 frames', async () => {
    const W = 32;
    const H = 24;
    const video = path.join(dir, 'eight.mkv');
    // Frame i is a solid grey of level 20 * i, lossless, so each decoded frame names its index.
    encode(video, Buffer.concat(Array.from({ length: 8 }, (_, i) => Buffer.alloc(W * H * 3, 20 * i))), W, H, 1, ['-c:v', 'ffv1', '-pix_fmt', 'bgr0']);
    const info = await probeVideo(video);
    const indices = frameIndices(info.frames, info.fps);
    expect(indices).toEqual([0, 1, 2, 3, 4, 4, 5, 6]);
    const levels: number[] = [];
    for await (const f of decodeFrames(video, info, indices)) levels.push(f.data[0] / 20);
    expect(levels).toEqual(indices);
    const pictures = await resolveNodeInput({ video }, {});
    expect(pictures).toMatchObject({ kind: 'video', count: 8 });
    const model = await LlavaMini.fromPretrained(await ensureTinyModel(path.join(dir, 'model')), { device: 'cpu' });
    try {
      const r = await model.ask({ video }, 'What happens?', { maxNewTokens: 1 }).done();
      // One vision token per frame (C = 1) in place of the <image> placeholder.
      expect(r.llmInputTokens).toBe(r.promptTokenIds.length - 1 + 8);
    } finally {
      await model.dispose();
    }
  });

  it('decodes a video with rotation metadata upright at the rotated size, not sheared', async () => {
    const W = 40;
    const H = 30;
    const frame = Buffer.alloc(W * H * 3);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) frame.set([x * 6, y * 8, 100], (y * W + x) * 3);
    }
    const plain = path.join(dir, 'plain.mp4');
    encode(plain, Buffer.concat([frame, frame, frame]), W, H, 1, ['-c:v', 'libx264rgb', '-qp', '0']);
    const rotated = path.join(dir, 'portrait.mp4');
    // What a phone writes: the stored picture is landscape, a display matrix turns it a quarter.
    expect(spawnSync(ffmpeg, ['-v', 'error', '-y', '-i', plain, '-c', 'copy', '-metadata:s:v:0', 'rotate=90', rotated]).status).toBe(0);
    const info = await probeVideo(rotated);
    expect(info).toMatchObject({ width: H, height: W, frames: 3 });
    expect(Math.abs(info.rotation)).toBe(90);
    const frames = [];
    for await (const f of decodeFrames(rotated, info, [0, 2])) frames.push(f);
    expect(frames).toHaveLength(2);
    // ffmpeg turns it counter-clockwise: output (x', y') is stored pixel (W - 1 - y', x').
    const expected = new Uint8Array(W * H * 3);
    for (let y = 0; y < W; y++) {
      for (let x = 0; x < H; x++) expected.set(frame.subarray(((x * W) + (W - 1 - y)) * 3, ((x * W) + (W - 1 - y)) * 3 + 3), (y * H + x) * 3);
    }
    for (const f of frames) {
      expect([f.width, f.height]).toEqual([H, W]);
      expect(Buffer.from(f.data).equals(Buffer.from(expected))).toBe(true);
    }
  });
});
