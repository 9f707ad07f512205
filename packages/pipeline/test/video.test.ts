import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AbortError, InvalidOptionError, VideoError } from '@llava-mini/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrames, frameIndices, probeVideo, roundHalfEven } from '@llava-mini/encoder/node';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-video-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('frame sampling (spec §6.1)', () => {
  it('rounds halves to even like numpy', () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, 2, 3]);
  });
  it('takes one frame per second at the middle of equal segments', () => {
    expect(frameIndices(35, 10)).toEqual([5, 17, 28]);
    expect(frameIndices(5, 1)).toEqual([0, 1, 2, 2, 3]);
    // seg = 1.25: the boundary 2.5 rounds to 2 (numpy), which moves the third index to 3.
    expect(frameIndices(6, 1.5)).toEqual([0, 1, 3, 4]);
  });
  it('takes at least one frame from a clip shorter than a second, and honours the cap', () => {
    expect(frameIndices(7, 30)).toEqual([3]);
    expect(frameIndices(300, 10, 4)).toEqual(frameIndices(300, 75));
    expect(() => frameIndices(0, 10)).toThrow(InvalidOptionError);
    expect(() => frameIndices(10, 10, 0)).toThrow(/maxFrames/);
  });
});

describe('decoding with ffmpeg', () => {
  const video = path.join(dir, 'gray.mkv');
  const W = 40;
  const H = 30;
  const N = 24;

  beforeAll(async () => {
    // Frame i is a solid grey of level 10 * i, encoded losslessly, so each decoded frame names its index.
    const raw = Buffer.concat(Array.from({ length: N }, (_, i) => Buffer.alloc(W * H * 3, 10 * i)));
    const ffmpeg = ((await import('@ffmpeg-installer/ffmpeg')) as unknown as { default: { path: string } }).default.path;
    const r = spawnSync(ffmpeg, ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${W}x${H}`, '-r', '8', '-i', 'pipe:0', '-c:v', 'ffv1', '-pix_fmt', 'bgr0', video], { input: raw });
    expect(r.status).toBe(0);
  });

  it('probes frame count and rate', async () => {
    expect(await probeVideo(video)).toEqual({ width: W, height: H, rotation: 0, frames: N, fps: 8 });
  });

  it('streams exactly the selected frames, in order', async () => {
    const info = await probeVideo(video);
    const indices = frameIndices(info.frames, info.fps);
    expect(indices).toEqual([4, 11, 19]);
    const levels: number[] = [];
    for await (const f of decodeFrames(video, info, indices)) {
      expect(f.data.length).toBe(W * H * 3);
      expect(f.data.every((v) => v === f.data[0])).toBe(true);
      levels.push(f.data[0] / 10);
    }
    expect(levels).toEqual(indices);
  });

  it('stops when aborted', async () => {
    const info = await probeVideo(video);
    const ctrl = new AbortController();
    const run = async () => {
      for await (const _ of decodeFrames(video, info, [0, 5, 10, 15, 20], ctrl.signal)) ctrl.abort();
    };
    await expect(run()).rejects.toThrow(AbortError);
  });

  it('refuses files that are not videos', async () => {
    const text = path.join(dir, 'notes.mp4');
    fs.writeFileSync(text, 'this is not a video');
    await expect(probeVideo(text)).rejects.toThrow(VideoError);
    const empty = path.join(dir, 'empty.mp4');
    fs.writeFileSync(empty, '');
    await expect(probeVideo(empty)).rejects.toThrow(VideoError);
    await expect(probeVideo(path.join(dir, 'missing.mp4'))).rejects.toThrow(VideoError);
  });
});
