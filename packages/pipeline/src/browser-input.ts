import { ImageError, InvalidOptionError, type ProgressCallback, VideoError } from '@llava-mini/core';
import { DEFAULT_MAX_PIXELS, fromImageData, type ImageDataLike, type RGB8 } from '@llava-mini/encoder';
import type { Pictures } from './model-parts.js';
import { frameIndices } from '@llava-mini/encoder';
import { imageHeaderSize } from './image-header.js';

/** A `<video>` element to sample at one frame per second; `fps` is the file's frame rate (browsers do not expose it). */
export interface VideoElementInput {
  video: HTMLVideoElement;
  fps?: number;
}

/** An image in the browser: a URL, a Blob, ImageData(-like) pixels, or anything a canvas can draw (<img>, <canvas>, ImageBitmap, OffscreenCanvas, VideoFrame). */
export type WebImageInput = string | URL | Blob | ImageDataLike | CanvasImageSource;

/** What `ask()` and `chat()` accept in the browser: an image, several images, a `<video>`, or a video's frames drawn already. */
export type WebInput = WebImageInput | WebImageInput[] | VideoElementInput | VideoFramesInput;

/** Pixels of anything a canvas can draw: ImageBitmap, <img>, <canvas>, OffscreenCanvas, VideoFrame, <video>. */
function drawToPixels(source: CanvasImageSource, width: number, height: number): RGB8 {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new ImageError('canvas', 'no 2D canvas context in this environment');
  ctx.drawImage(source, 0, 0, width, height);
  return fromImageData(ctx.getImageData(0, 0, width, height));
}

/** Intrinsic size of a drawable: <img> natural size, <video> frame size, VideoFrame display size, else width/height. */
function sizeOf(source: CanvasImageSource): [number, number] {
  const s = source as unknown as Record<string, unknown>;
  const first = (...keys: string[]) => keys.map((k) => s[k]).find((v): v is number => typeof v === 'number' && v > 0) ?? 0;
  return [first('naturalWidth', 'videoWidth', 'displayWidth', 'width'), first('naturalHeight', 'videoHeight', 'displayHeight', 'height')];
}

/** The Node entry's pixel limit and wording, applied before a picture is decoded or drawn where its size is known first. */
function checkPixels(name: string, width: number, height: number, maxPixels: number, video = false): void {
  const pixels = width * height;
  if (pixels <= maxPixels) return;
  const what = `${width}x${height} = ${pixels} pixels${video ? ' a frame' : ''} is more than the limit of ${maxPixels} (option maxPixels)`;
  throw video ? new VideoError(name, what) : new ImageError(name, what);
}

async function loadOne(input: unknown, maxPixels: number, signal?: AbortSignal): Promise<RGB8> {
  if (typeof input === 'string' || input instanceof URL) {
    const url = String(input);
    const res = await fetch(url, { signal }).catch((err) => {
      throw new ImageError(url, `cannot be fetched: ${(err as Error).message}`, { cause: err });
    });
    if (!res.ok) throw new ImageError(url, `cannot be fetched: HTTP ${res.status}`);
    input = await res.blob();
  }
  if (input instanceof Blob) {
    // createImageBitmap decodes the whole picture: its size is read from the header first.
    const header = await imageHeaderSize(input);
    if (header) checkPixels('blob', header.width, header.height, maxPixels);
    const bitmap = await createImageBitmap(input).catch((err) => {
      throw new ImageError('blob', `cannot be decoded as an image: ${(err as Error).message}`, { cause: err });
    });
    try {
      // A format the header reader does not know (AVIF, ICO, ...) is checked once decoded, before it is drawn.
      checkPixels('blob', bitmap.width, bitmap.height, maxPixels);
      return drawToPixels(bitmap, bitmap.width, bitmap.height);
    } finally {
      bitmap.close();
    }
  }
  if (input && typeof input === 'object' && 'data' in input && 'width' in input) {
    const img = input as ImageDataLike;
    checkPixels('ImageData', img.width, img.height, maxPixels);
    return fromImageData(img);
  }
  if (typeof OffscreenCanvas !== 'undefined' && input && typeof input === 'object') {
    const [w, h] = sizeOf(input as CanvasImageSource);
    checkPixels(input.constructor?.name ?? 'image', w, h, maxPixels);
    if (w > 0 && h > 0) return drawToPixels(input as CanvasImageSource, w, h);
  }
  throw new InvalidOptionError('cannot read this input as an image: pass a URL, Blob, ImageData, ImageBitmap, <img>, <canvas>, { video } or { frames }');
}

function seek(video: HTMLVideoElement, time: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      video.removeEventListener('seeked', done);
      video.removeEventListener('error', fail);
      resolve();
    };
    const fail = () => reject(new VideoError(video.currentSrc || 'video', 'cannot be decoded'));
    if (signal?.aborted) return reject(new VideoError('video', 'aborted'));
    video.addEventListener('seeked', done, { once: true });
    video.addEventListener('error', fail, { once: true });
    video.currentTime = time;
  });
}

/** The reference's frames (one per second, spec §6.1) of a <video>, drawn one at a time. */
async function* videoFrames(video: HTMLVideoElement, fps: number, indices: number[], signal?: AbortSignal): AsyncGenerator<RGB8> {
  for (const i of indices) {
    // Frame i spans [i/fps, (i+1)/fps); seeking to its middle avoids landing on the previous frame.
    await seek(video, (i + 0.5) / fps, signal);
    yield drawToPixels(video, video.videoWidth, video.videoHeight);
  }
}

/**
 * A video whose frames the caller already drew, at the reference's frame indices (frameIndices()):
 * how a Web Worker, which has no <video>, receives one from the page.
 */
export interface VideoFramesInput {
  frames: readonly (ImageDataLike | ImageBitmap)[];
}

async function* givenFrames(frames: VideoFramesInput['frames']): AsyncGenerator<RGB8> {
  for (const f of frames) yield 'data' in f ? fromImageData(f) : drawToPixels(f, f.width, f.height);
}

/** `maxPixels`: most pixels of an image or a video frame (default DEFAULT_MAX_PIXELS, as in Node). */
export async function resolveBrowserInput(input: WebInput, o: { signal?: AbortSignal; onProgress?: ProgressCallback; maxFrames?: number; maxPixels?: number }): Promise<Pictures> {
  const maxPixels = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels > 0)) throw new InvalidOptionError(`maxPixels must be positive, got ${maxPixels}`);
  if (input && typeof input === 'object' && 'video' in input) {
    const { video, fps = 30 } = input as VideoElementInput;
    if (!(video.readyState >= 1) || !Number.isFinite(video.duration)) throw new VideoError(video.currentSrc || 'video', 'has no metadata yet (wait for loadedmetadata)');
    checkPixels(video.currentSrc || 'video', video.videoWidth, video.videoHeight, maxPixels, true);
    const total = Math.max(1, Math.floor(video.duration * fps));
    const indices = frameIndices(total, fps, o.maxFrames);
    return { kind: 'video', count: indices.length, frames: videoFrames(video, fps, indices, o.signal) };
  }
  if (input && typeof input === 'object' && 'frames' in input && Array.isArray((input as VideoFramesInput).frames)) {
    const { frames } = input as VideoFramesInput;
    if (frames.length === 0) throw new InvalidOptionError('a video needs at least one frame');
    // Drawn already: checked before any is copied.
    for (const f of frames) checkPixels('frames', f.width, f.height, maxPixels, true);
    return { kind: 'video', count: frames.length, frames: givenFrames(frames) };
  }
  const list = Array.isArray(input) ? input : [input];
  if (list.length === 0) throw new InvalidOptionError('no images given');
  const images: RGB8[] = [];
  for (const item of list) images.push(await loadOne(item, maxPixels, o.signal));
  return { kind: 'images', images };
}
