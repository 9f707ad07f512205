// Page script for browser-live.test.ts: mediaStreamFrames on canvas streams (no model), the outcome
// left on window.__result.
import { mediaStreamFrames } from '@llava-mini/pipeline/web';

export interface LiveFramesResult {
  /** Four frames at 4 fps of a canvas whose colour changes: their times, sizes and the red value drawn when each was read. */
  frames: { time: number; width: number; height: number; red: number; drawnRed: number }[];
  /** A 640x480 canvas read with maxPixels 320 * 240. */
  scaled: { width: number; height: number };
  /** Seconds between frames when the consumer takes 600 ms per frame at 4 fps. */
  slowGaps: number[];
  /** Milliseconds from track.stop() / abort() to the generator's end. */
  endedAfterStopMs: number;
  endedAfterAbortMs: number;
  /** The error (name, code, message) of each bad call. */
  errors: Record<string, { name: string; code?: string; message: string }>;
  error?: string;
}

/** A canvas captured as a stream, its red channel stepped every 50 ms (what was drawn last is `red()`). */
function colourCanvas(width: number, height: number) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  let red = 0;
  const draw = () => {
    red = (red + 7) % 256;
    ctx.fillStyle = `rgb(${red}, 100, 200)`;
    ctx.fillRect(0, 0, width, height);
  };
  draw();
  const timer = setInterval(draw, 50);
  const stream = canvas.captureStream(30);
  return { stream, red: () => red, stop: () => (clearInterval(timer), stream.getTracks().forEach((t) => t.stop())) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function errorOf(run: () => AsyncGenerator<unknown>): Promise<{ name: string; code?: string; message: string }> {
  try {
    await run().next();
    return { name: 'none', message: 'no error' };
  } catch (err) {
    const e = err as Error & { code?: string };
    return { name: e.constructor.name, code: e.code, message: e.message };
  }
}

async function main(): Promise<LiveFramesResult> {
  const source = colourCanvas(64, 48);
  const frames: LiveFramesResult['frames'] = [];
  for await (const f of mediaStreamFrames(source.stream, { fps: 4 })) {
    frames.push({ time: f.time, width: f.width, height: f.height, red: f.data[0], drawnRed: source.red() });
    if (frames.length === 4) break;
  }
  source.stop();

  const big = colourCanvas(640, 480);
  const first = await mediaStreamFrames(big.stream, { maxPixels: 320 * 240 }).next();
  big.stop();
  const scaled = { width: first.value?.width ?? 0, height: first.value?.height ?? 0 };

  const slow = colourCanvas(32, 32);
  const times: number[] = [];
  for await (const f of mediaStreamFrames(slow.stream, { fps: 4 })) {
    times.push(f.time);
    if (times.length === 4) break;
    await sleep(600);
  }
  slow.stop();
  const slowGaps = times.slice(1).map((t, i) => t - times[i]);

  // The track ends: the generator returns by itself.
  const ending = colourCanvas(32, 32);
  const endingFrames = mediaStreamFrames(ending.stream, { fps: 4 });
  await endingFrames.next();
  let stoppedAt = performance.now();
  const endedByStop = (async () => {
    for await (const _ of endingFrames);
    return performance.now() - stoppedAt;
  })();
  stoppedAt = performance.now();
  for (const t of ending.stream.getTracks()) t.stop();
  const endedAfterStopMs = await endedByStop;
  ending.stop();

  // The signal aborts: it returns at once, though its next frame is 10 s away.
  const aborted = colourCanvas(32, 32);
  const abort = new AbortController();
  const byAbort = mediaStreamFrames(aborted.stream, { fps: 0.1, signal: abort.signal });
  await byAbort.next();
  const abortedAt = performance.now();
  setTimeout(() => abort.abort(), 100);
  const last = await byAbort.next();
  const endedAfterAbortMs = last.done ? performance.now() - abortedAt - 100 : -1;
  aborted.stop();

  const audioOnly = new AudioContext().createMediaStreamDestination().stream;
  const ok = colourCanvas(8, 8);
  const errors = {
    noTracks: await errorOf(() => mediaStreamFrames(new MediaStream())),
    audioOnly: await errorOf(() => mediaStreamFrames(audioOnly)),
    fps: await errorOf(() => mediaStreamFrames(ok.stream, { fps: 0 })),
    maxPixels: await errorOf(() => mediaStreamFrames(ok.stream, { maxPixels: 1.5 })),
    notAStream: await errorOf(() => mediaStreamFrames({} as MediaStream)),
  };
  ok.stop();
  const endedTrack = colourCanvas(8, 8);
  endedTrack.stop();
  Object.assign(errors, { endedTrack: await errorOf(() => mediaStreamFrames(endedTrack.stream)) });
  return { frames, scaled, slowGaps, endedAfterStopMs, endedAfterAbortMs, errors };
}

void main()
  .catch((err: unknown) => ({ error: String((err as Error)?.stack ?? err) }) as LiveFramesResult)
  .then((r) => {
    (window as unknown as { __result?: LiveFramesResult }).__result = r;
  });
