// Node entry of @llava-mini/encoder: everything platform-neutral, plus image decoding with sharp.
import { open as openFile, stat } from 'node:fs/promises';
import { errorMessage, ImageError } from '@llava-mini/core';
import type { Metadata, Sharp } from 'sharp';
import { DEFAULT_MAX_PIXELS, type RGB8 } from './image.js';
import { SNIFF_BYTES, sniffImageFormat } from './sniff.js';

export * from './index.js';
export { DEFAULT_VIDEO_TIMEOUT_SECONDS, decodeFrames, ffmpegBinary, parseProbe, probeVideo, VIDEO_DEMUXERS, type RgbFrame, type VideoInfo, type VideoLimits } from './video.js';
export { liveVideoFrames, type LiveVideoOptions } from './live-video.js';

export interface LoadImageOptions {
  /** Refuse images with more pixels than this, from the header, before decoding (default 1e8). */
  maxPixels?: number;
  /** Apply the EXIF orientation (default true). PIL's `Image.open` does not; pass false for bit parity with it. */
  autoOrient?: boolean;
  /** Name used in errors for buffer input (default '<buffer>'). */
  name?: string;
  /** Give up decoding after this many seconds, a whole number (default 60; 0: no limit). */
  timeoutSeconds?: number;
}

export const DEFAULT_DECODE_TIMEOUT_SECONDS = 60;

type SharpModule = (typeof import('sharp'))['default'];
let sharpModule: Promise<SharpModule> | undefined;

/**
 * sharp is an optional peer dependency (a native library of about 20 MB that browser apps and
 * callers passing pixels never need), loaded on the first image file to decode.
 */
function loadSharp(name: string): Promise<SharpModule> {
  sharpModule ??= import('sharp').then(
    (m) => (m.default ?? (m as unknown as SharpModule)),
    (err) => {
      sharpModule = undefined;
      throw new ImageError(name, 'decoding image files in Node needs the sharp package, an optional peer dependency: run `npm install sharp` (or pass pixels: { width, height, data })', { cause: err });
    },
  );
  return sharpModule;
}

/** The formats a LLaVA-Mini user can hand the Python reference, as sharp names them (AVIF is 'heif' + av1). */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

/**
 * Decode an image file or buffer (JPEG, PNG, WebP, GIF first frame, TIFF first page, AVIF) into RGB8
 * pixels with the values PIL's `Image.open(f).convert('RGB')` gives (see README: alpha dropped,
 * greyscale replicated, CMYK by PIL's formula, 16-bit as PIL unpacks it, ICC profiles ignored), plus
 * the EXIF orientation unless `autoOrient: false`. Every failure is an ImageError naming the input.
 */
export async function loadImage(input: string | Buffer | Uint8Array, options: LoadImageOptions = {}): Promise<RGB8> {
  const name = typeof input === 'string' ? input : (options.name ?? '<buffer>');
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels > 0)) throw new ImageError(name, `maxPixels must be positive, got ${maxPixels}`);
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_DECODE_TIMEOUT_SECONDS;
  if (!Number.isSafeInteger(timeoutSeconds) || timeoutSeconds < 0) throw new ImageError(name, `timeoutSeconds must be a whole number >= 0, got ${timeoutSeconds}`);
  // The magic number first: bytes of any other kind never reach a decoder (an SVG would reach an XML parser).
  const sniffed = sniffImageFormat(await readHead(input, name));
  if (sniffed === undefined) throw new ImageError(name, UNSUPPORTED);
  if (sniffed === 'svg') throw new ImageError(name, 'svg images are not supported (JPEG, PNG, WebP, GIF, TIFF, AVIF are)');
  const sharp = await loadSharp(name);

  // sharp's own pixel limit would make metadata() fail with a vaguer message, so the header is read
  // without it; the decode keeps it as a second guard.
  const open = (limit: number | false) =>
    sharp(input, { autoOrient: options.autoOrient ?? true, ignoreIcc: true, failOn: 'error', limitInputPixels: limit });
  let meta: Metadata;
  try {
    // Header only: the pixel limit is enforced before any pixel is decoded.
    meta = await open(false).metadata();
  } catch (err) {
    const msg = oneLine(errorMessage(err));
    if (/unsupported image format/i.test(msg)) throw new ImageError(name, UNSUPPORTED, { cause: err });
    throw new ImageError(name, `corrupt image header: ${msg}`, { cause: err });
  }
  if (!FORMATS.has(meta.format) || (meta.format === 'heif' && meta.compression !== 'av1')) {
    const what = meta.format === 'heif' ? `HEIF/${meta.compression ?? 'unknown'}` : meta.format;
    throw new ImageError(name, `${what} images are not supported (JPEG, PNG, WebP, GIF, TIFF, AVIF are)`);
  }
  const pixels = meta.width * meta.height;
  if (!(pixels > 0)) throw new ImageError(name, `the header gives no size (${meta.width}x${meta.height})`);
  if (pixels > maxPixels) throw new ImageError(name, `${meta.width}x${meta.height} = ${pixels} pixels is more than the limit of ${maxPixels} (option maxPixels)`);
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') throw new ImageError(name, `${meta.depth} samples are not supported (8- and 16-bit are)`);

  try {
    const img = open(Number.isFinite(maxPixels) ? Math.max(1, Math.floor(maxPixels)) : false);
    return await decodeAsPil(timeoutSeconds > 0 ? img.timeout({ seconds: timeoutSeconds }) : img, meta);
  } catch (err) {
    const msg = oneLine(errorMessage(err));
    if (/^timeout\b/i.test(msg)) throw new ImageError(name, `decoding took more than ${timeoutSeconds} s (option timeoutSeconds)`, { cause: err });
    throw new ImageError(name, `corrupt or truncated image: ${msg}`, { cause: err });
  }
}

const UNSUPPORTED = 'not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, AVIF)';

/** libvips reports each decoder warning on its own line, repeated: one line of the distinct ones, bounded. */
function oneLine(message: string): string {
  const line = [...new Set(message.split(/\r?\n/).map((l) => l.trim()).filter(Boolean))].join('; ');
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

/** The first SNIFF_BYTES of the input; a missing, unreadable, empty or non-file input is an ImageError. */
async function readHead(input: string | Buffer | Uint8Array, name: string): Promise<Uint8Array> {
  if (typeof input !== 'string') {
    if (!(input instanceof Uint8Array)) throw new ImageError(name, `expected a file path, Buffer or Uint8Array, got ${typeof input}`);
    if (input.length === 0) throw new ImageError(name, 'empty buffer');
    return input.subarray(0, SNIFF_BYTES);
  }
  let handle: Awaited<ReturnType<typeof openFile>> | undefined;
  try {
    // stat before open: opening a FIFO or a device could block or never end.
    if (!(await stat(input)).isFile()) throw new ImageError(name, 'not a file');
    handle = await openFile(input, 'r');
    const s = await handle.stat();
    if (s.size === 0) throw new ImageError(name, 'empty file (0 bytes)');
    const head = new Uint8Array(Math.min(SNIFF_BYTES, s.size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } catch (err) {
    if (err instanceof ImageError) throw err;
    throw new ImageError(name, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : `cannot read: ${errorMessage(err)}`, { cause: err });
  } finally {
    await handle?.close();
  }
}

/**
 * Raw samples in the image's own colour space (no ICC or CMYK colour management), then the
 * conversion PIL's `convert('RGB')` applies to the mode PIL would open the file in.
 */
async function decodeAsPil(img: Sharp, meta: Metadata): Promise<RGB8> {
  const space = meta.space;
  if (space === 'cmyk') {
    const { data, info } = await img.pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
    return cmykToRgb(data, info.width, info.height, info.channels);
  }
  if (meta.depth === 'ushort') {
    const grey = space === 'grey16' || space === 'b-w';
    const { data, info } = await img.toColourspace(grey ? 'grey16' : 'rgb16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
    const samples = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
    // PIL opens 16-bit greyscale without alpha as mode I and clamps it into 0..255 on convert('RGB');
    // every other 16-bit layout is unpacked to 8 bits by keeping the high byte.
    const to8 = grey && info.channels === 1 ? (v: number) => (v > 255 ? 255 : v) : (v: number) => v >> 8;
    return toRgb(samples, info.width, info.height, info.channels, to8);
  }
  const { data, info } = await img.toColourspace(space === 'b-w' ? 'b-w' : 'srgb').raw().toBuffer({ resolveWithObject: true });
  return toRgb(data, info.width, info.height, info.channels, (v) => v);
}

/** 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) channels to RGB: grey replicated, alpha dropped. */
function toRgb(src: ArrayLike<number>, width: number, height: number, channels: number, to8: (v: number) => number): RGB8 {
  const out = new Uint8Array(width * height * 3);
  const colour = channels >= 3;
  for (let i = 0, s = 0; i < width * height; i++, s += channels) {
    const r = to8(src[s]);
    out[i * 3] = r;
    out[i * 3 + 1] = colour ? to8(src[s + 1]) : r;
    out[i * 3 + 2] = colour ? to8(src[s + 2]) : r;
  }
  return { width, height, data: out };
}

/** PIL's cmyk2rgb: R = (255 - K) - round(C * (255 - K) / 255) with its MULDIV255 rounding, no profile. */
function cmykToRgb(src: Uint8Array, width: number, height: number, channels: number): RGB8 {
  const out = new Uint8Array(width * height * 3);
  const muldiv255 = (a: number, b: number) => {
    const t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (let i = 0, s = 0; i < width * height; i++, s += channels) {
    const nk = 255 - src[s + 3];
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.max(0, nk - muldiv255(src[s + c], nk));
  }
  return { width, height, data: out };
}
