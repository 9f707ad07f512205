// Live mode on the page: a camera (getUserMedia), the screen (getDisplayMedia) or the built-in shapes
// scene (canvas.captureStream()) read at one frame a second by the library's mediaStreamFrames and
// posted to the worker with their times; the worker keeps the live stream and answers about its window.
import { mediaStreamFrames } from '@llava-mini/pipeline/web';
import type { FromWorker, LiveFrame, ToWorker } from './protocol.js';
import { SCENE_ABOUT, shapesScene } from './scene.js';

export type LiveSource = 'camera' | 'screen' | 'scene';

/**
 * The frames the page sent lately (the window's and a few more), on `window.llavaLive`: what a test
 * compares with Node. `inWindow`: the worker took the frame into its window (it skips a frame that
 * comes too soon after the last one taken, and drops one the encoder had no time for).
 */
export interface LiveCapture {
  source?: LiveSource;
  frames: (LiveFrame & { inWindow?: boolean })[];
}

/**
 * Frames bigger than this are drawn scaled down before they go to the worker (a 4K screen is 8 M
 * pixels): the vision encoder resizes every frame to its own input anyway.
 */
const MAX_PIXELS = 640 * 480;

const NAMES: Record<LiveSource, string> = { camera: 'the camera', screen: 'the screen', scene: 'the shapes scene' };

export interface LiveHooks {
  send(m: ToWorker, transfer?: Transferable[]): void;
  /** The preview element the stream plays in. */
  video: HTMLVideoElement;
  /** Says what is going on (the source, then the window and the counts). */
  line: HTMLElement;
  windowSeconds(): number;
  /** A live stream started: a new conversation about `name`. */
  started(name: string): void;
  /** It stopped (the Stop button, the source ended, or a picture was taken instead). */
  stopped(): void;
}

export function liveMode(hooks: LiveHooks) {
  const capture: LiveCapture = { frames: [] };
  (globalThis as { llavaLive?: LiveCapture }).llavaLive = capture;
  let running: { abort: AbortController; release(): void } | undefined;
  let lastStats = '';

  async function open(source: LiveSource): Promise<{ stream: MediaStream; release(): void }> {
    if (source === 'scene') {
      const scene = shapesScene();
      return { stream: scene.stream, release: scene.stop };
    }
    const stream = source === 'camera' ? await navigator.mediaDevices.getUserMedia({ video: true, audio: false }) : await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    return { stream, release: () => stream.getTracks().forEach((t) => t.stop()) };
  }

  async function start(source: LiveSource): Promise<void> {
    stop();
    hooks.line.textContent = `Opening ${NAMES[source]}…`;
    hooks.line.classList.remove('error');
    const { stream, release } = await open(source);
    const abort = new AbortController();
    running = { abort, release };
    capture.source = source;
    capture.frames = [];
    const windowSeconds = hooks.windowSeconds();
    hooks.send({ type: 'live-start', windowSeconds });
    hooks.video.srcObject = stream;
    hooks.video.hidden = false;
    void hooks.video.play().catch(() => undefined);
    hooks.line.dataset.source = source;
    lastStats = '';
    hooks.line.textContent = `Live: ${NAMES[source]}${source === 'scene' ? ` (${SCENE_ABOUT})` : ''}, one frame a second, a window of ${windowSeconds} s. Waiting for the first frame…`;
    hooks.started(NAMES[source]);
    try {
      for await (const f of mediaStreamFrames(stream, { fps: 1, signal: abort.signal, maxPixels: MAX_PIXELS })) {
        const frame: LiveFrame = { width: f.width, height: f.height, data: f.data, time: f.time };
        // Kept for a test to read back: the window's frames and a few seconds more.
        capture.frames.push({ ...frame, data: f.data.slice() });
        while (capture.frames.length && capture.frames[0].time < f.time - windowSeconds - 5) capture.frames.shift();
        hooks.send({ type: 'live-frame', frame }, [frame.data.buffer]);
      }
    } finally {
      if (running?.abort === abort) {
        // The source ended by itself (a screen share stopped from the browser's bar).
        running = undefined;
        release();
        hooks.send({ type: 'live-stop' });
        hooks.video.srcObject = null;
        hooks.line.textContent = `Live stopped${lastStats ? `: ${lastStats}` : ''}.`;
        hooks.stopped();
      }
    }
  }

  /** Ends the live stream (nothing happens when none runs). */
  function stop(): void {
    const r = running;
    if (!r) return;
    running = undefined;
    r.abort.abort();
    r.release();
    hooks.send({ type: 'live-stop' });
    hooks.video.srcObject = null;
    hooks.line.textContent = `Live stopped${lastStats ? `: ${lastStats}` : ''}.`;
    hooks.stopped();
  }

  /** The worker's counts after each frame it took: the window a question would see now, and what was dropped. */
  function stats(m: Extract<FromWorker, { type: 'live-stats' }>): void {
    if (!running) return;
    const taken = capture.frames.find((f) => f.time === m.time);
    if (taken) taken.inWindow = true;
    const w = m.window;
    lastStats = `window ${w.frames} frame${w.frames === 1 ? '' : 's'} (${w.from.toFixed(1)}–${w.to.toFixed(1)} s, ${(w.bytes / 1e6).toFixed(1)} MB) · ${m.received} received · ${m.encoded} encoded · ${m.dropped} dropped`;
    hooks.line.textContent = `Live: ${lastStats}`;
    Object.assign(hooks.line.dataset, { frames: String(w.frames), dropped: String(m.dropped), received: String(m.received) });
  }

  return {
    start: (source: LiveSource) =>
      start(source).catch((err: Error) => {
        stop();
        hooks.line.textContent = `${NAMES[source]} could not be read: ${err.message}`;
        hooks.line.classList.add('error');
      }),
    stop,
    stats,
    get active() {
      return !!running;
    },
  };
}
