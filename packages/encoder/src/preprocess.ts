import { InvalidOptionError } from '@llava-mini/core';
import { CLIP_MEAN, CLIP_STD, type VisionConfig } from './config.js';
import { checkImage, nearestResize, PAD_COLOR, type RGB8, splitImage } from './image.js';
import { paddedToSquare, resizeBicubicWindow, type RowSource } from './resample.js';

/** Channels-first CLIP input for P pieces: `data` is [P, 3, size, size] float32. */
export interface PixelBatch {
  data: Float32Array;
  pieces: number;
  size: number;
}

/**
 * transformers' `get_resize_output_image_size(default_to_square=False)`: the short side becomes
 * `size`, the long side `int(size * long / short)` (truncated). Returns [width, height].
 */
export function shortestEdgeSize(width: number, height: number, size: number): [number, number] {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.trunc((size * long) / short);
  return width <= height ? [size, newLong] : [newLong, size];
}

/** transformers' `center_crop` offsets for a crop that fits: top = (h - size) // 2, left = (w - size) // 2. */
export function centerCropOffsets(width: number, height: number, size: number): { left: number; top: number } {
  return { left: Math.floor((width - size) / 2), top: Math.floor((height - size) / 2) };
}

const RESCALE = 1 / 255;
const MEAN32 = CLIP_MEAN.map(Math.fround);
const STD32 = CLIP_STD.map(Math.fround);

/**
 * Rescale and normalise a size x size RGB8 image into `out` at `offset` as channels-first float32,
 * with transformers' rounding: `(p * (1/255))` in float64 cast to float32, then `(x - mean) / std`
 * in float32.
 */
export function normalizeInto(img: RGB8, out: Float32Array, offset = 0): void {
  const plane = img.width * img.height;
  if (out.length < offset + 3 * plane) throw new InvalidOptionError(`output needs ${3 * plane} floats at offset ${offset}, has ${out.length - offset}`);
  for (let c = 0; c < 3; c++) {
    const mean = MEAN32[c];
    const std = STD32[c];
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) {
      const x = Math.fround(img.data[i * 3 + c] * RESCALE);
      out[base + i] = Math.fround(Math.fround(x - mean) / std);
    }
  }
}

/**
 * CLIPImageProcessor on one piece: bicubic resize of the short side to `size` (Pillow's resampler),
 * centre crop to size x size, rescale 1/255, normalise. Returns [3, size, size] float32. Only the
 * cropped window is resampled (the values are those of the full resize).
 */
export function clipPreprocess(img: RGB8, size: number): Float32Array {
  checkImage(img);
  const out = new Float32Array(3 * size * size);
  clipPreprocessInto(img, size, out, 0);
  return out;
}

function clipPreprocessInto(img: RGB8 | RowSource, size: number, out: Float32Array, offset: number): void {
  if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidOptionError(`image size must be a positive integer, got ${size}`);
  const [w, h] = shortestEdgeSize(img.width, img.height, size);
  const { left, top } = centerCropOffsets(w, h, size);
  normalizeInto(resizeBicubicWindow(img, w, h, left, top, size, size), out, offset);
}

function batch(pieces: RGB8[], size: number, each: (piece: RGB8) => RGB8 | RowSource): PixelBatch {
  const n = 3 * size * size;
  const data = new Float32Array(pieces.length * n);
  pieces.forEach((piece, i) => clipPreprocessInto(each(piece), size, data, i * n));
  return { data, pieces: pieces.length, size };
}

/**
 * LLaVA-Mini's image path (spec §1.2): split into N*N pieces plus the full image when
 * `resolutionRatio` N > 1, then per piece expand2square when `imageAspectRatio` is 'pad', then
 * CLIP preprocessing. Returns [P, 3, S, S] with P = 1 or N*N + 1.
 */
export function processImage(img: RGB8, config: Pick<VisionConfig, 'imageSize' | 'imageAspectRatio' | 'resolutionRatio'>): PixelBatch {
  const pad = config.imageAspectRatio === 'pad';
  // paddedToSquare is expand2square without materialising the square canvas.
  return batch(splitImage(img, config.resolutionRatio), config.imageSize, (piece) => (pad ? paddedToSquare(piece, PAD_COLOR) : piece));
}

/**
 * LLaVA-Mini's video-frame path (spec §6.1): nearest-neighbour squash to S x S, split like an image
 * when N > 1, then CLIP preprocessing without padding (resize and crop are no-ops on S x S pieces).
 */
export function processFrame(frame: RGB8, config: Pick<VisionConfig, 'imageSize' | 'resolutionRatio'>): PixelBatch {
  const S = config.imageSize;
  return batch(splitImage(nearestResize(frame, S, S), config.resolutionRatio), S, (piece) => piece);
}
