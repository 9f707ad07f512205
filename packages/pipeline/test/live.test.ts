// A live stream answers about the frames in its window exactly as the video mode answers about those
// frames given as a video (itself checked against the reference in e2e.test.ts), encodes each frame
// once on arrival, keeps several streams and a chat on one model apart, and drops frames by its
// policy when they come faster than the encoder. The checkpoint is random at std 0.3, where a frame
// more or less in what pre-fusion sees changes the tokens.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DisposedError, InvalidOptionError, VideoError } from '@llava-mini/core';
import type { TimedFrame } from '@llava-mini/encoder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrames, frameIndices, liveVideoFrames, LlavaMini, probeVideo } from '../src/node.js';
import { type Fixture, fixture, IMAGE, VIDEO } from './fixtures.js';

const SLOW = 600_000;
let f: Fixture;
let frames: TimedFrame[];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-live-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  f = await fixture('live', { seed: 11 });
  // clip.mp4: 4 s at 10 fps; read at 2 fps, faster than real time, so the stream offers 8 frames 0.5 s apart.
  frames = [];
  for await (const frame of liveVideoFrames(VIDEO, { fps: 2, realtime: false })) frames.push(frame);
}, SLOW);

const strip = ({ width, height, data }: TimedFrame) => ({ width, height, data });

describe('a live source read through ffmpeg', () => {
  it('delivers frames at the asked rate, stamped with their stream time, and refuses what it cannot read', async () => {
    expect(frames.map((x) => x.time)).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]);
    expect(frames.every((x) => x.width === 320 && x.height === 240 && x.data.length === 320 * 240 * 3)).toBe(true);
    // Consecutive frames differ: the clip moves, and these are its decoded pictures, not one repeated.
    expect(Buffer.compare(Buffer.from(frames[0].data), Buffer.from(frames[7].data))).not.toBe(0);
    const read = async (source: string, o = {}) => {
      for await (const _ of liveVideoFrames(source, { realtime: false, ...o }));
    };
    await expect(read(path.join(tmp, 'missing.mp4'))).rejects.toThrow(VideoError);
    const text = path.join(tmp, 'notes.mp4');
    fs.writeFileSync(text, 'not a video');
    await expect(read(text)).rejects.toThrow(/cannot be read/);
    await expect(read(VIDEO, { maxPixels: 1000 })).rejects.toThrow(/maxPixels/);
    // A file: URL is decoded as a path (a space in a folder name is %20 in the URL).
    const spaced = path.join(tmp, 'a folder');
    fs.mkdirSync(spaced, { recursive: true });
    fs.copyFileSync(VIDEO, path.join(spaced, 'clip.mp4'));
    let n = 0;
    for await (const _ of liveVideoFrames(pathToFileURL(path.join(spaced, 'clip.mp4')).href, { realtime: false })) n++;
    expect(n).toBe(4);
    await expect(read(VIDEO, { fps: 0 })).rejects.toThrow(/fps/);
  });

  it('plays a file in real time, and stops when aborted', async () => {
    const started = performance.now();
    const ctrl = new AbortController();
    const got: number[] = [];
    for await (const frame of liveVideoFrames(VIDEO, { fps: 2, signal: ctrl.signal })) {
      got.push(frame.time);
      if (frame.time >= 1) ctrl.abort();
    }
    expect(got).toEqual([0, 0.5, 1]);
    // Frame 1.0 s of the clip is not decoded before about 1 s has passed.
    expect(performance.now() - started).toBeGreaterThan(800);
  });
});

describe.each(['cpu', 'wasm'] as const)('live streams on %s', (device) => {
  let model: LlavaMini;
  beforeAll(async () => {
    model = await LlavaMini.fromPretrained(f.model, { device });
  }, SLOW);
  afterAll(() => model?.dispose());

  it('reads { frames } as the video mode reads a file: the same frames give the same tokens', async () => {
    const info = await probeVideo(VIDEO);
    const decoded = [];
    for await (const frame of decodeFrames(VIDEO, info, frameIndices(info.frames, info.fps))) decoded.push(frame);
    const q = 'What moves?';
    const fromFile = await model.ask({ video: VIDEO }, q, { maxNewTokens: 8 }).done();
    expect((await model.ask({ frames: decoded }, q, { maxNewTokens: 8 }).done()).ids).toEqual(fromFile.ids);
    expect(fromFile.llmInputTokens).toBe(fromFile.promptTokenIds.length - 1 + decoded.length);
  }, SLOW);

  it('answers at several moments with the tokens of the video mode on exactly the window, encoding each frame once', async () => {
    const live = model.live({ windowSeconds: 2 });
    const history: { user: string; assistant: string }[] = [];
    const encoded = model.vision.encoderRuns;
    let asked = 0;
    for (const [i, frame] of frames.entries()) {
      await live.push(frame, frame.time);
      if (i % 3 !== 2 && i !== frames.length - 1) continue;
      // The window: the sampled frames (one a second) of the last 2 s, as the test reckons them.
      const sampled = frames.slice(0, i + 1).filter((x) => Number.isInteger(x.time));
      const window = sampled.filter((x) => x.time > frame.time - 2);
      const before = model.vision.encoderRuns;
      const q = `What happens in frame ${i}?`;
      const got = await live.ask(q, { maxNewTokens: 6 }).done();
      expect(model.vision.encoderRuns, 'a question encodes nothing').toBe(before);
      expect(got.window).toMatchObject({ frames: window.length, from: window[0].time, to: window[window.length - 1].time });
      const want = await model.ask({ frames: window.map(strip) }, q, { maxNewTokens: 6, history }).done();
      expect(got.ids, `question at ${frame.time} s`).toEqual(want.ids);
      if (window.length > 1) {
        // Sensitivity: the window without its oldest frame answers otherwise (or the comparison above proves little).
        const shorter = await model.ask({ frames: window.slice(1).map(strip) }, q, { maxNewTokens: 6, history }).done();
        expect(shorter.ids).not.toEqual(want.ids);
      }
      history.push({ user: q, assistant: got.text });
      asked++;
    }
    expect(asked).toBe(3);
    // Frames at 0, 1, 2 and 3 s were sampled; the 0.5 s ones fell between samples. The reference runs above encoded again.
    expect(live.stats).toMatchObject({ received: 8, sampled: 4, encoded: 4, dropped: 0, evicted: 0 });
    expect(live.history.length).toBe(3);
    expect(model.vision.encoderRuns).toBeGreaterThanOrEqual(encoded + 4);
    live.dispose();
    expect(() => live.ask('again?')).toThrow(DisposedError);
  }, SLOW);

  it('keeps two streams and a chat on one model apart, asked at once', async () => {
    const a = model.live();
    const b = model.live();
    const ordered = frames.filter((x) => Number.isInteger(x.time));
    const reversed = [...ordered].reverse();
    await Promise.all([a.follow(toStream(ordered), { wait: true }), b.follow(toStream(reversed.map((x, i) => ({ ...x, time: i }))), { wait: true })]);
    const chat = model.chat(IMAGE);
    const q = 'What is going on?';
    const [ra, rb, rc] = await Promise.all([a.ask(q, { maxNewTokens: 8 }).done(), b.ask(q, { maxNewTokens: 8 }).done(), chat.ask(q, { maxNewTokens: 8 }).done()]);
    expect(ra.ids).toEqual((await model.ask({ frames: ordered.map(strip) }, q, { maxNewTokens: 8 }).done()).ids);
    expect(rb.ids).toEqual((await model.ask({ frames: reversed.map(strip) }, q, { maxNewTokens: 8 }).done()).ids);
    expect(rc.ids).toEqual((await model.ask(IMAGE, q, { maxNewTokens: 8 }).done()).ids);
    expect(ra.ids).not.toEqual(rb.ids);
    a.dispose();
    b.dispose();
    chat.dispose();
  }, SLOW);

  it('drops frames that come faster than the encoder (the newest wins) and keeps the window within its byte budget', async () => {
    const live = model.live({ windowSeconds: 600 });
    // 40 frames, one a second of stream time, offered at once: the encoder takes the first it can and then only the newest.
    const offered = Array.from({ length: 40 }, (_, i) => live.push(strip(frames[i % frames.length]), i));
    await Promise.all(offered);
    await live.idle();
    const s = live.stats;
    expect(s.sampled).toBe(40);
    expect(s.encoded + s.dropped).toBe(40);
    expect(s.encoded).toBeLessThan(5);
    expect(live.window.to).toBe(39);
    live.dispose();

    const sized = model.live();
    await sized.push(strip(frames[0]), 0);
    const perFrame = sized.window.bytes;
    sized.dispose();
    const budget = model.live({ maxBytes: Math.floor(perFrame * 2.5) });
    await budget.follow(toStream(frames.filter((x) => Number.isInteger(x.time))), { wait: true });
    expect(budget.window.frames).toBe(2);
    expect(budget.window.bytes).toBeLessThanOrEqual(perFrame * 2.5);
    expect(budget.stats).toMatchObject({ encoded: 4, evicted: 2 });
    budget.dispose();
  }, SLOW);

  it('samples one frame a period: jittered frames keep their slots, a late one does not push the next on-time one out', async () => {
    const live = model.live();
    const times = [0, 0.4, 0.999, 1.5, 1.998, 3.77, 4.0, 4.5, 5.0];
    for (const t of times) await live.push(strip(frames[0]), t);
    // 0.4 and 1.5 and 4.5 come between samples; 3.77 is late for its slot (3), 4.0 and 5.0 are on time.
    expect(live.stats).toMatchObject({ received: 9, sampled: 6 });
    expect(live.window).toMatchObject({ frames: 6, from: 0, to: 5 });
    live.dispose();
  }, SLOW);

  it('refuses bad input with typed errors', async () => {
    const live = model.live();
    await expect(live.ask('anything?').done()).rejects.toThrow(/no frames yet/);
    // ready() waits for the first frame; a failing source or dispose() ends the wait with its reason.
    const ready = live.ready();
    const ten = live.ready(10);
    await live.push(strip(frames[0]), 0);
    await expect(ready).resolves.toBeUndefined();
    const broken = model.live();
    const waiting = broken.ready();
    await expect(broken.follow(liveVideoFrames(path.join(tmp, 'gone.mp4')))).rejects.toThrow(VideoError);
    await expect(waiting).rejects.toThrow(/file not found/);
    // A source that ends before the window has the frames asked for ends the wait too; so does asking more than the window holds.
    const short = model.live({ windowSeconds: 10 });
    const three = short.ready(3);
    await short.follow(toStream(frames.slice(0, 2)), { wait: true });
    await expect(three).rejects.toThrow(/ended with 1 frame/);
    await expect(short.ready(11)).rejects.toThrow(/at most 10 frames/);
    short.dispose();
    // A listener that throws does not stop the stream.
    const noisy = model.live({ onFrame: () => { throw new Error('listener bug'); } });
    await noisy.follow(toStream(frames.filter((x) => Number.isInteger(x.time))), { wait: true });
    expect(noisy.stats.encoded).toBe(4);
    noisy.dispose();
    expect(() => live.push({ width: 2, height: 2, data: new Uint8Array(3) }, 0)).toThrow(InvalidOptionError);
    await live.push(strip(frames[0]), 5);
    expect(() => live.push(strip(frames[1]), 4)).toThrow(/non-decreasing/);
    expect(() => model.live({ fps: 0 })).toThrow(/fps/);
    expect(() => model.live({ windowSeconds: -1 })).toThrow(/windowSeconds/);
    // dispose() stops a question that is running.
    const running = live.ask('What is going on here?', { maxNewTokens: 40, stopStrings: [], onToken: () => live.dispose() });
    await expect(running.done()).rejects.toThrow(/abort|disposed/i);
    await expect(ten).rejects.toThrow(DisposedError);
  }, SLOW);
});

async function* toStream(list: TimedFrame[]): AsyncGenerator<TimedFrame> {
  yield* list;
}
