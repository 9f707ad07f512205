// mediaStreamFrames in headless Chromium, on canvases captured as MediaStreams (no model: the page's
// live test in examples/web runs it into a LiveStream): frames at the asked rate with the picture of
// the moment, a size cap, a slow reader given no backlog, the end of the track or the signal ending
// it, and typed errors for what is not a video stream.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePage, HAVE_CHROMIUM, launchChromium, runPage, serve } from './chromium.js';
import type { LiveFramesResult } from './live-page.js';

describe.skipIf(!HAVE_CHROMIUM)('mediaStreamFrames in Chromium', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-browser-live-'));
  let site: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let r: LiveFramesResult;

  beforeAll(async () => {
    await bundlePage(path.join(__dirname, 'live-page.ts'), root);
    site = await serve({ '/': root });
    browser = await launchChromium();
    const run = await runPage<LiveFramesResult>(browser, site.origin, `${site.origin}/index.html`, 60_000);
    r = run.result;
    if (r.error) throw new Error(`${r.error}\n${run.log.join('\n')}`);
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await site?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('draws the picture of the moment at 1/fps intervals, timed from the first frame', () => {
    expect(r.frames.map((f) => [f.width, f.height])).toEqual(Array(4).fill([64, 48]));
    // On a grid of 0.25 s from the first frame: never early (a timer can run late on a busy page, not early).
    r.frames.forEach((f, k) => expect(f.time).toBeGreaterThanOrEqual(k * 0.25 - 0.002));
    expect(r.frames[0].time).toBe(0);
    expect(r.frames[3].time).toBeLessThan(1.5);
    // The canvas changes every 50 ms and the stream lags it by a frame or two: each frame's red is a recent one.
    for (const f of r.frames) expect((f.drawnRed - f.red + 256) % 256).toBeLessThanOrEqual(7 * 4);
    expect(new Set(r.frames.map((f) => f.red)).size).toBe(4);
  });

  it('scales a picture larger than maxPixels down, keeping its aspect ratio', () => {
    expect(r.scaled).toEqual({ width: 320, height: 240 });
  });

  it('gives a slow reader the picture of the moment, not a backlog', () => {
    // 600 ms per frame at 4 fps: the next instant on the grid after each read, about 0.75 s apart, never 0.25 s.
    for (const g of r.slowGaps) expect(g).toBeGreaterThan(0.55);
  });

  it('ends when the track ends or the signal aborts', () => {
    expect(r.endedAfterStopMs).toBeLessThan(1000);
    expect(r.endedAfterAbortMs).toBeGreaterThanOrEqual(0);
    expect(r.endedAfterAbortMs).toBeLessThan(1000);
  });

  it('refuses what is not a live video with typed one-line errors', () => {
    expect(r.errors.noTracks).toMatchObject({ name: 'VideoError', code: 'VIDEO', message: 'MediaStream: has no video track' });
    expect(r.errors.audioOnly).toMatchObject({ name: 'VideoError', code: 'VIDEO', message: 'MediaStream: has no video track' });
    expect(r.errors.endedTrack).toMatchObject({ name: 'VideoError', code: 'VIDEO', message: 'MediaStream: its video track has ended' });
    expect(r.errors.fps).toMatchObject({ name: 'InvalidOptionError', code: 'INVALID_OPTION' });
    expect(r.errors.maxPixels).toMatchObject({ name: 'InvalidOptionError', code: 'INVALID_OPTION' });
    expect(r.errors.notAStream).toMatchObject({ name: 'InvalidOptionError', code: 'INVALID_OPTION' });
  });
});
