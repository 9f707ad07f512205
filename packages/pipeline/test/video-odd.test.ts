// Odd and hostile videos, made here with ffmpeg or a few bytes of YUV4MPEG: a frame size past the
// pixel limit, a million frames, no video stream, no frames, a single frame, a variable frame rate, a
// 1 x 1 picture, and a probe or decode that overruns its time. Each is answered, or refused with a
// VideoError naming the limit, before any frame is decoded.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VideoError } from '@llava-mini/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyModel, LlavaMini, resolveNodeInput } from '../src/node.js';
import { decodeFrames, parseProbe, probeVideo } from '@llava-mini/encoder/node';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-video-odd-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let ffmpeg: string;

beforeAll(async () => {
  ffmpeg = ((await import('@ffmpeg-installer/ffmpeg')) as unknown as { default: { path: string } }).default.path;
});

function make(name: string, args: string[], input?: Buffer): string {
  const out = path.join(dir, name);
  const r = spawnSync(ffmpeg, ['-v', 'error', '-y', ...args, out], { input });
  expect(r.status, String(r.stderr)).toBe(0);
  return out;
}

/** A YUV4MPEG2 stream (4:2:0): a one-line header, then FRAME lines each followed by its samples. */
function y4m(name: string, header: string, frames: number, frameBytes: number): string {
  const one = Buffer.concat([Buffer.from('FRAME\n'), Buffer.alloc(frameBytes, 128)]);
  const body = Buffer.alloc(one.length * frames);
  for (let i = 0; i < frames; i++) one.copy(body, i * one.length);
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.concat([Buffer.from(`YUV4MPEG2 ${header} Ip A1:1 C420jpeg\n`), body]));
  return p;
}

async function refusal(promise: Promise<unknown>): Promise<VideoError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VideoError);
  expect((err as VideoError).message).not.toMatch(/\n/);
  return err as VideoError;
}

describe('videos refused before decoding', () => {
  it('a frame of 12,000 x 12,000 declared in a 60-byte file, and the limit as an option', async () => {
    const big = y4m('big.y4m', 'W12000 H12000 F25:1', 1, 8);
    expect(fs.statSync(big).size).toBeLessThan(100);
    const err = await refusal(resolveNodeInput({ video: big }, {}));
    expect(err.message).toBe(`${big}: 12000x12000 = 144000000 pixels a frame is more than the limit of 100000000 (option maxPixels)`);
    const small = y4m('small.y4m', 'W16 H16 F25:1', 2, 384);
    expect((await refusal(resolveNodeInput({ video: small }, { maxPixels: 255 }))).message).toMatch(/16x16 = 256 pixels a frame is more than the limit of 255 \(option maxPixels\)/);
    expect(await resolveNodeInput({ video: small }, { maxPixels: 256 })).toMatchObject({ kind: 'video', count: 1 });
  });

  it('no video stream, and a video stream of no frames', async () => {
    const audio = make('audio.mka', ['-f', 'lavfi', '-i', 'anullsrc=r=8000', '-t', '0.5']);
    expect((await refusal(probeVideo(audio))).message).toBe(`${audio}: has no video stream`);
    const empty = y4m('empty.y4m', 'W16 H16 F25:1', 0, 0);
    expect((await refusal(probeVideo(empty))).message).toBe(`${empty}: has no frames`);
  });

  it('ffprobe and ffmpeg are stopped at timeoutSeconds', async () => {
    // A FIFO nobody writes to: either program waits on it for ever, so only the limit can end it.
    const fifo = path.join(dir, 'stuck.mp4');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expect((await refusal(probeVideo(fifo, { timeoutSeconds: 0.3 }))).message).toBe(`${fifo}: probing took more than 0.3 s (option timeoutSeconds)`);
    const frames = decodeFrames(fifo, { width: 2, height: 2, rotation: 0, frames: 5, fps: 1 }, [0, 4], undefined, { timeoutSeconds: 0.3 });
    expect((await refusal(frames.next())).message).toBe(`${fifo}: decoding took more than 0.3 s (option timeoutSeconds)`);
    // Through resolveNodeInput a FIFO is refused before ffprobe is started.
    expect((await refusal(resolveNodeInput({ video: fifo }, {}))).message).toBe(`${fifo}: not a file`);
  });
});

describe('ffmpeg reads the one file named, as a video container', () => {
  it('an HLS playlist naming a video elsewhere, and a text file the tty demuxer would draw, are refused', async () => {
    const elsewhere = make('elsewhere.mkv', ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '8x8', '-r', '1', '-i', 'pipe:0', '-c:v', 'ffv1'], Buffer.alloc(8 * 8 * 3 * 2, 9));
    const playlist = path.join(dir, 'holiday.m3u8');
    fs.writeFileSync(playlist, `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://${elsewhere}\n#EXT-X-ENDLIST\n`);
    const text = path.join(dir, 'notes.ans');
    fs.writeFileSync(text, 'the text of a private file\n');
    const ffprobe = ((await import('@ffprobe-installer/ffprobe')) as unknown as { default: { path: string } }).default.path;
    for (const file of [playlist, text]) {
      // Unguarded, ffprobe finds a video stream in each: the playlist's target, or the text drawn.
      const plain = spawnSync(ffprobe, ['-v', 'error', '-show_entries', 'stream=codec_type', '-of', 'json', file]);
      expect(String(plain.stdout), file).toMatch(/"video"/);
      const err = await refusal(probeVideo(file));
      expect(err.message).not.toMatch(/private/);
      const frames = decodeFrames(file, { width: 8, height: 8, rotation: 0, frames: 2, fps: 1 }, [0]);
      await refusal(frames.next());
    }
  });
});

describe("a probe's output is checked, whatever the container claims", () => {
  const ok = { width: 4, height: 2, avg_frame_rate: '10/1', nb_read_packets: '20' };
  const parse = (v: unknown) => parseProbe(JSON.stringify({ streams: [v] }), 'v.mp4');
  it('reads a plain stream, with rotation from side data or a tag', () => {
    expect(parse(ok)).toEqual({ width: 4, height: 2, rotation: 0, frames: 20, fps: 10 });
    expect(parse({ ...ok, side_data_list: [{}, { rotation: -90 }] })).toMatchObject({ width: 2, height: 4, rotation: -90 });
    expect(parse({ ...ok, tags: { rotate: '180' } })).toMatchObject({ width: 4, height: 2, rotation: 180 });
    expect(parse({ ...ok, tags: { rotate: { toString: false } } })).toMatchObject({ rotation: 0 });
    expect(parse({ ...ok, avg_frame_rate: '0/0', r_frame_rate: '30000/1001' }).fps).toBeCloseTo(29.97, 2);
  });
  it('refuses every field that is missing, negative, fractional, infinite or of the wrong type', () => {
    const bad: [unknown, RegExp][] = [
      [{ ...ok, width: '4' }, /no usable frame size \(stringx2\)/],
      [{ ...ok, height: { toString: false } }, /no usable frame size \(4xobject\)/],
      [{ ...ok, nb_read_packets: { toString: false } }, /has no frames/],
      [{ ...ok, avg_frame_rate: { toString: false } }, /no usable frame rate/],
      [{ ...ok, height: 0 }, /no usable frame size/],
      [{ ...ok, width: 1.5 }, /no usable frame size/],
      [{ ...ok, width: 1e300, height: 1e300 }, /no usable frame size/],
      [{ ...ok, nb_read_packets: '-3' }, /has no frames/],
      [{ ...ok, nb_read_packets: '2.5' }, /has no frames/],
      [{ ...ok, nb_read_packets: undefined }, /has no frames/],
      [{ ...ok, avg_frame_rate: '1/0' }, /no usable frame rate/],
      [{ ...ok, avg_frame_rate: '-5/1' }, /no usable frame rate/],
      [{ ...ok, avg_frame_rate: 'Infinity/1' }, /no usable frame rate/],
      [null, /no video stream/],
      ['stream', /no video stream/],
    ];
    for (const [stream, message] of bad) expect(() => parse(stream), JSON.stringify(stream)).toThrow(message);
    for (const out of ['', 'null', '{"streams": 5}', '{"streams": {}}', '[]']) expect(() => parseProbe(out, 'v.mp4'), out).toThrow(VideoError);
  });
});

describe('odd videos are answered', () => {
  it('a single frame (zero duration), a variable frame rate, and a 1 x 1 picture', async () => {
    const single = make('single.mkv', ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '8x8', '-r', '25', '-i', 'pipe:0', '-c:v', 'ffv1', '-pix_fmt', 'bgr0'], Buffer.alloc(8 * 8 * 3, 77));
    expect(await probeVideo(single)).toMatchObject({ frames: 1, width: 8, height: 8 });
    // Ten frames 20 ms apart, then frames half a second apart: 8 frames over about 2 s.
    const vfr = make('vfr.mp4', ['-f', 'lavfi', '-i', 'testsrc=s=16x16:r=10', '-t', '3', '-vf', "setpts='if(lt(N,10),N*0.02/TB,(N-9)*0.5/TB+0.2/TB)'", '-vsync', 'vfr', '-c:v', 'libx264']);
    const vfrInfo = await probeVideo(vfr);
    expect(vfrInfo.frames).toBe(8);
    const dot = make('dot.mkv', ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', '1x1', '-r', '2', '-i', 'pipe:0', '-c:v', 'ffv1', '-pix_fmt', 'bgr0'], Buffer.from([10, 20, 30, 40, 50, 60, 70, 80, 90]));
    for (const [video, count] of [
      [single, 1],
      [vfr, Math.floor(8 / vfrInfo.fps)],
      [dot, 1],
    ] as const) {
      const pictures = await resolveNodeInput({ video }, {});
      expect(pictures).toMatchObject({ kind: 'video', count });
      if (pictures.kind !== 'video') continue;
      const frames = [];
      for await (const f of pictures.frames) frames.push(f);
      expect(frames).toHaveLength(count);
      if (video === dot) expect([frames[0].width, frames[0].height, ...frames[0].data]).toEqual([1, 1, 40, 50, 60]);
    }

    // The model answers about the 1 x 1 video, and a million frames (12 MB) are refused as too long
    // a prompt from the probe, before one frame is decoded.
    const million = y4m('million.y4m', 'W2 H2 F25:1', 1_000_000, 6);
    const model = await LlavaMini.fromPretrained(await ensureTinyModel(path.join(dir, 'model')), { device: 'cpu' });
    try {
      const r = await model.ask({ video: dot }, 'What is this?', { maxNewTokens: 2 }).done();
      expect(r.llmInputTokens).toBe(r.promptTokenIds.length - 1 + 1);
      await expect(model.ask({ video: million }, 'What happens?', { maxNewTokens: 1 }).done()).rejects.toMatchObject({ code: 'PROMPT_TOO_LONG' });
    } finally {
      await model.dispose();
    }
  });
});
