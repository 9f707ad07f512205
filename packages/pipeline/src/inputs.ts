import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AbortError, ImageError, InvalidOptionError, VideoError } from '@llava-mini/core';
import { fromImageData, type RGB8 } from '@llava-mini/encoder';
import { loadImage } from '@llava-mini/encoder/node';
import type { Pictures, ResolveInputOptions } from './model-parts.js';
import { decodeFrames, frameIndices, probeVideo } from '@llava-mini/encoder/node';

/** File extensions read as videos when a path is passed without `{ video }`. */
export const VIDEO_EXTENSIONS = new Set(['.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.wmv', '.flv', '.3gp']);

/**
 * An image in Node: a file path, a file: URL, an http(s) URL, a data: URL (base64), a
 * Buffer/Uint8Array of an encoded image, ImageData-like RGBA pixels `{ width, height, data }`, or
 * RGB pixels (`data.length === width * height * 3`).
 */
export type ImageInput = string | URL | Uint8Array | { width: number; height: number; data: Uint8Array | Uint8ClampedArray };

/** A video file; a path with a video extension (VIDEO_EXTENSIONS) is read as a video too. */
export interface VideoInput {
  video: string;
}

/**
 * A video's frames, decoded or read already (any image input each), in the order they were shown:
 * read as a video is (frame preprocessing, one vision token each, the fused text averaged), e.g.
 * the frames a live stream's window held.
 */
export interface VideoFramesInput {
  frames: readonly ImageInput[];
}

/**
 * What `ask()` and `chat()` accept in Node: an image, several images (their vision tokens are
 * concatenated in order, as video frames are), a video, or a video's frames.
 */
export type NodeInput = ImageInput | ImageInput[] | VideoInput | VideoFramesInput;

export interface ResolveOptions extends ResolveInputOptions {
  maxFrames?: number;
  /** Most pixels of an image, or of a video's frame, read from its header before decoding. */
  maxPixels?: number;
  /** Most seconds of decoding one image, or of running ffprobe or ffmpeg on one video (defaults: 60 s an image, 600 s a video). */
  decodeTimeoutSeconds?: number;
}

/** The bytes of a base64 data: URL (`data:image/png;base64,...`). */
export function dataUrlBytes(url: string): Uint8Array {
  const m = /^data:([^,;]*)((?:;[^,;]*)*),(.*)$/s.exec(url);
  if (!m) throw new ImageError('data URL', 'malformed: expected data:<type>;base64,<data>');
  if (!/;base64$/i.test(m[2])) throw new ImageError('data URL', 'only base64 data URLs are supported');
  const data = m[3].replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 === 1) throw new ImageError('data URL', 'the data is not valid base64');
  return new Uint8Array(Buffer.from(data, 'base64'));
}

/** ffprobe would wait for ever on a FIFO and read a device without end: only regular files are videos. */
async function checkFile(file: string): Promise<void> {
  const s = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new VideoError(file, err.code === 'ENOENT' ? 'file not found' : `cannot read: ${err.message}`, { cause: err });
  });
  if (!s.isFile()) throw new VideoError(file, 'not a file');
}

/** SHA-256 of a file's bytes, read as a stream (a video's identity, far cheaper than decoding it). */
async function fileDigest(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file, { signal })) hash.update(chunk as Buffer);
  } catch (err) {
    if (signal?.aborted) throw new AbortError('reading the video was aborted');
    throw new VideoError(file, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  return hash.digest('hex');
}

/** The decoding limits of an image or a video. */
const decodeLimits = (o: ResolveOptions) => ({ maxPixels: o.maxPixels, timeoutSeconds: o.decodeTimeoutSeconds });

/** A path from a path or file: URL string (other strings are returned as they are). */
function localPath(input: string): string {
  return input.startsWith('file:') ? fileURLToPath(input) : input;
}

async function loadOne(input: unknown, o: ResolveOptions): Promise<RGB8> {
  if (typeof input === 'string' && /^https?:\/\//.test(input)) input = new URL(input);
  if (typeof input === 'string' && input.startsWith('data:')) return loadImage(dataUrlBytes(input), { ...decodeLimits(o), name: 'data URL' });
  if (typeof input === 'string') input = localPath(input);
  if (input instanceof URL && input.protocol === 'file:') input = fileURLToPath(input);
  if (input instanceof URL) {
    const res = await fetch(input, { signal: o.signal }).catch((err) => {
      throw new ImageError(input.toString(), `cannot be fetched: ${(err as Error).message}`, { cause: err });
    });
    if (!res.ok) throw new ImageError(input.toString(), `cannot be fetched: HTTP ${res.status}`);
    return loadImage(new Uint8Array(await res.arrayBuffer()), { ...decodeLimits(o), name: input.toString() });
  }
  if (typeof input === 'string' || input instanceof Uint8Array) return loadImage(input, decodeLimits(o));
  if (input && typeof input === 'object' && 'data' in input && 'width' in input && 'height' in input) {
    const img = input as { width: number; height: number; data: Uint8Array | Uint8ClampedArray };
    if (img.data.length === img.width * img.height * 3) return { width: img.width, height: img.height, data: new Uint8Array(img.data) };
    return fromImageData(img);
  }
  throw new InvalidOptionError(`cannot read ${describe(input)} as an image: pass a path, URL, Buffer, ImageData, { video: path } or { frames }`);
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? `an object (${Object.keys(v as object).join(', ')})` : typeof v;
}

export async function resolveNodeInput(input: NodeInput, o: ResolveOptions): Promise<Pictures> {
  const videoPath =
    input && typeof input === 'object' && 'video' in input ? localPath(String((input as { video: unknown }).video)) : typeof input === 'string' && VIDEO_EXTENSIONS.has(path.extname(input).toLowerCase()) ? localPath(input) : undefined;
  if (videoPath !== undefined) {
    if (/^(data|https?):/.test(videoPath)) throw new InvalidOptionError(`videos are read from files: ${videoPath.slice(0, 40)}... is not a path or file: URL`);
    await checkFile(videoPath);
    const limits = decodeLimits(o);
    // The file's content and the sampling name its frames: a video the model holds needs no ffprobe
    // or ffmpeg. A model that keeps no pictures (no knownVideo) has no use for the name.
    const key = o.knownVideo ? `${await fileDigest(videoPath, o.signal)}:${o.maxFrames ?? 'all'}` : undefined;
    const known = key === undefined ? undefined : o.knownVideo?.(key);
    if (known !== undefined) {
      const later = async function* () {
        const info = await probeVideo(videoPath, limits);
        yield* decodeFrames(videoPath, info, frameIndices(info.frames, info.fps, o.maxFrames), o.signal, limits);
      };
      return { kind: 'video', count: known, key, frames: later() };
    }
    const info = await probeVideo(videoPath, limits);
    const indices = frameIndices(info.frames, info.fps, o.maxFrames);
    return { kind: 'video', count: indices.length, key, frames: decodeFrames(videoPath, info, indices, o.signal, limits) };
  }
  if (input && typeof input === 'object' && 'frames' in input) {
    const { frames } = input as VideoFramesInput;
    if (!Array.isArray(frames) || frames.length === 0) throw new InvalidOptionError('{ frames } needs an array of at least one frame');
    // Read one at a time as pre-fusion asks for them, like a video file's frames.
    const read = async function* () {
      for (const f of frames) yield await loadOne(f, o);
    };
    return { kind: 'video', count: frames.length, frames: read() };
  }
  const list = Array.isArray(input) ? input : [input];
  if (list.length === 0) throw new InvalidOptionError('no images given');
  const images: RGB8[] = [];
  for (const item of list) images.push(await loadOne(item, o));
  return { kind: 'images', images };
}
