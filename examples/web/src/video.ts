// A short video's frames, drawn on the page (a Web Worker has no <video>) at the frames the
// reference samples: one per second, the middle of equal segments (frameIndices, spec §6.1).
import { frameIndices } from '@llava-mini/pipeline';

/** Browsers do not expose a file's frame rate; 30 is the common one. */
const ASSUMED_FPS = 30;
/** A "short" video: at most this many frames (seconds) are looked at. */
export const MAX_FRAMES = 16;

function seek(video: HTMLVideoElement, time: number): Promise<void> {
  return new Promise((resolve, reject) => {
    video.addEventListener('seeked', () => resolve(), { once: true });
    video.addEventListener('error', () => reject(new Error('the video cannot be decoded')), { once: true });
    video.currentTime = time;
  });
}

export async function videoFrames(video: HTMLVideoElement): Promise<ImageBitmap[]> {
  if (video.readyState < 1) await new Promise((r) => video.addEventListener('loadedmetadata', r, { once: true }));
  if (!Number.isFinite(video.duration) || video.duration <= 0) throw new Error('the video has no duration');
  const total = Math.max(1, Math.floor(video.duration * ASSUMED_FPS));
  const frames: ImageBitmap[] = [];
  for (const i of frameIndices(total, ASSUMED_FPS, MAX_FRAMES)) {
    // Frame i spans [i/fps, (i+1)/fps): its middle avoids landing on the previous frame.
    await seek(video, Math.min((i + 0.5) / ASSUMED_FPS, video.duration));
    frames.push(await createImageBitmap(video));
  }
  await seek(video, 0);
  return frames;
}
