// A MediaStream (a camera, a screen, a canvas) as timed frames for LiveStream.follow() in the browser.
//
// The picture is read from a muted <video> playing the stream, drawn on a canvas at each sampling
// instant. MediaStreamTrackProcessor would hand over every frame the track produces (30 a second,
// each a VideoFrame to close, queued if not read), where a live stream wants one a second, and it
// exists in Chromium only; a <video> shows the newest frame at any moment in every browser.
import { InvalidOptionError, VideoError } from '@llava-mini/core';
import { fromImageData, type TimedFrame } from '@llava-mini/encoder';

export interface MediaStreamFramesOptions {
  /** Frames drawn per second (default 1, the model's video sampling). */
  fps?: number;
  /** Ends the frames (the generator returns; the stream's tracks are left running: they are the caller's). */
  signal?: AbortSignal;
  /**
   * Most pixels a frame may have: a larger picture (a 4K screen) is drawn scaled down, keeping its
   * aspect ratio. The vision encoder resizes every frame to its own input size, so the full size
   * only costs copying. Default: the stream's own size.
   */
  maxPixels?: number;
}

const SOURCE = 'MediaStream';

/** Resolves after `ms`, or at once when `signal` aborts or `stop` fires (whichever first). */
function sleep(ms: number, signal: AbortSignal | undefined, stop: EventTarget, stopEvent: string): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      stop.removeEventListener(stopEvent, done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
    stop.addEventListener(stopEvent, done, { once: true });
  });
}

/** Waits until the <video> knows the picture's size (its first frame has arrived); false when the stream ended first. */
async function firstPicture(video: HTMLVideoElement, track: MediaStreamTrack, signal?: AbortSignal): Promise<boolean> {
  await video.play().catch((err: Error) => {
    throw new VideoError(SOURCE, `cannot be played: ${err.message}`, { cause: err });
  });
  while (!(video.videoWidth > 0 && video.videoHeight > 0)) {
    if (signal?.aborted || track.readyState === 'ended') return false;
    await sleep(20, signal, track, 'ended');
  }
  return true;
}

/**
 * The frames of `stream`'s (first) video track, drawn at 1/`fps` intervals, each with `time`: the
 * seconds since the first one. Ends when the track ends (the camera is unplugged, the screen share
 * stopped) or `signal` aborts. A consumer slower than `fps` gets the picture of the moment it asks
 * for the next frame, never a backlog. Main thread only (a <video> draws the picture). Feed a live
 * stream with `live.follow(mediaStreamFrames(stream))`.
 */
export async function* mediaStreamFrames(stream: MediaStream, { fps = 1, signal, maxPixels }: MediaStreamFramesOptions = {}): AsyncGenerator<TimedFrame> {
  if (!(Number.isFinite(fps) && fps > 0)) throw new InvalidOptionError(`fps must be a number > 0, got ${String(fps)}`);
  if (maxPixels !== undefined && !(Number.isSafeInteger(maxPixels) && maxPixels > 0)) throw new InvalidOptionError(`maxPixels must be a whole number > 0, got ${String(maxPixels)}`);
  if (typeof stream?.getVideoTracks !== 'function') throw new InvalidOptionError('mediaStreamFrames needs a MediaStream (getUserMedia, getDisplayMedia, canvas.captureStream())');
  const track = stream.getVideoTracks()[0];
  if (!track) throw new VideoError(SOURCE, 'has no video track');
  if (track.readyState === 'ended') throw new VideoError(SOURCE, 'its video track has ended');
  if (typeof document === 'undefined') throw new VideoError(SOURCE, 'can only be read on a page\'s main thread (it needs a <video> element): post the frames to a worker');
  if (signal?.aborted) return;

  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  let canvas: HTMLCanvasElement | undefined;
  let ctx: CanvasRenderingContext2D | null = null;
  try {
    if (!(await firstPicture(video, track, signal))) return;
    const period = 1000 / fps;
    let start: number | undefined;
    let next = performance.now();
    // A function, so that the compiler does not take readyState for fixed across the awaits.
    const over = () => !!signal?.aborted || track.readyState === 'ended';
    while (!over()) {
      await sleep(next - performance.now(), signal, track, 'ended');
      if (over()) break;
      const at = performance.now();
      // The grid of instants starts at the first frame drawn (the first wait can run late).
      if (start === undefined) next = start = at;
      // The picture's size can change while it plays (a rotated phone, a resized window being shared).
      const [w, h] = fit(video.videoWidth, video.videoHeight, maxPixels);
      if (!canvas || canvas.width !== w || canvas.height !== h) {
        canvas = document.createElement('canvas');
        canvas.width = w;
        canvas.height = h;
        ctx = canvas.getContext('2d', { willReadFrequently: true });
        if (!ctx) throw new VideoError(SOURCE, 'no 2D canvas context in this browser');
      }
      const c = ctx as CanvasRenderingContext2D;
      c.drawImage(video, 0, 0, w, h);
      const frame = fromImageData(c.getImageData(0, 0, w, h));
      yield { ...frame, time: (at - start) / 1000 };
      // The next instant on the grid that is still ahead: a slow consumer skips instants instead of queueing them.
      next += period * Math.max(1, Math.ceil((performance.now() - next) / period));
    }
  } finally {
    video.pause();
    video.srcObject = null;
  }
}

/** The largest size of the same aspect ratio with at most `maxPixels` pixels (the size itself when it fits). */
function fit(width: number, height: number, maxPixels?: number): [number, number] {
  if (!maxPixels || width * height <= maxPixels) return [width, height];
  const scale = Math.sqrt(maxPixels / (width * height));
  return [Math.max(1, Math.floor(width * scale)), Math.max(1, Math.floor(height * scale))];
}
