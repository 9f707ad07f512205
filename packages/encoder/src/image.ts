import { ImageError, InvalidOptionError } from '@llava-mini/core';

/**
 * 8-bit RGB pixels, row-major, 3 bytes per pixel (what PIL's `convert('RGB')` holds). Every
 * preprocessing step works on this, so Node (sharp) and the browser (canvas ImageData) feed the
 * same code and get the same numbers.
 */
export interface RGB8 {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A video frame and when it was shown, in seconds of its stream's own clock (a live source's frames). */
export interface TimedFrame extends RGB8 {
  time: number;
}

/** LLaVA's pad colour: `tuple(int(m * 255) for m in CLIP_MEAN)`. */
/** The most pixels (width x height) a picture or video frame may have before it is refused, from its header (1e8). */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export const PAD_COLOR = [122, 116, 104] as const;

/** Throws InvalidOptionError unless `img` is a well-formed RGB8 image with at least one pixel. */
export function checkImage(img: RGB8, what = 'image'): void {
  if (!img || typeof img !== 'object') throw new InvalidOptionError(`${what} must be an RGB8 image {width, height, data}`);
  const { width, height, data } = img;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0) {
    throw new InvalidOptionError(`${what} needs positive integer width and height, got ${width}x${height}`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new InvalidOptionError(`${what} of ${width}x${height} needs ${width * height * 3} RGB bytes, got ${data instanceof Uint8Array ? data.length : typeof data}`);
  }
}

export function blankImage(width: number, height: number, fill?: readonly number[]): RGB8 {
  const data = new Uint8Array(width * height * 3);
  if (fill) for (let i = 0; i < data.length; i += 3) data.set(fill, i);
  return { width, height, data };
}

/** PIL `img.crop((left, top, left + width, top + height))` for a box inside the image. */
export function crop(img: RGB8, left: number, top: number, width: number, height: number): RGB8 {
  if (left < 0 || top < 0 || width <= 0 || height <= 0 || left + width > img.width || top + height > img.height) {
    throw new InvalidOptionError(`crop box (${left}, ${top}, ${left + width}, ${top + height}) is not inside a ${img.width}x${img.height} image`);
  }
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * img.width + left) * 3;
    out.set(img.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { width, height, data: out };
}

/** PIL `canvas.paste(img, (left, top))` for an image that fits; writes into `canvas`. */
function paste(canvas: RGB8, img: RGB8, left: number, top: number): void {
  for (let y = 0; y < img.height; y++) {
    canvas.data.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((top + y) * canvas.width + left) * 3);
  }
}

/**
 * LLaVA's `expand2square`: a square canvas of side max(w, h) in `background`, the image pasted at
 * (0, (w - h) // 2) when wider than tall, else at ((h - w) // 2, 0). A square image comes back as is.
 */
export function expandToSquare(img: RGB8, background: readonly number[] = PAD_COLOR): RGB8 {
  checkImage(img);
  const { width: w, height: h } = img;
  if (w === h) return img;
  const side = Math.max(w, h);
  const canvas = blankImage(side, side, background);
  if (w > h) paste(canvas, img, 0, Math.floor((w - h) / 2));
  else paste(canvas, img, Math.floor((h - w) / 2), 0);
  return canvas;
}

/**
 * LLaVA-Mini's `split_image(img, n)`: N*N crops of (W // N) x (H // N), row-major, then the full image
 * last. The right and bottom remainder pixels are in no crop. N = 1 gives [img].
 */
export function splitImage(img: RGB8, n: number): RGB8[] {
  checkImage(img);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidOptionError(`split factor must be a positive integer, got ${n}`);
  if (n === 1) return [img];
  const bw = Math.floor(img.width / n);
  const bh = Math.floor(img.height / n);
  if (bw === 0 || bh === 0) throw new ImageError('image', `a ${img.width}x${img.height} image is too small to split into ${n}x${n} pieces`);
  const pieces: RGB8[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) pieces.push(crop(img, j * bw, i * bh, bw, bh));
  pieces.push(img);
  return pieces;
}

/**
 * Nearest-neighbour resize as `torch.nn.functional.interpolate(mode='nearest')` does it (video
 * frames, spec §6.1): src = min(floor(dst * scale), in - 1) with scale = in / out in float32.
 */
export function nearestResize(img: RGB8, width: number, height: number): RGB8 {
  checkImage(img);
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0) {
    throw new InvalidOptionError(`resize target must be positive integers, got ${width}x${height}`);
  }
  const xs = nearestIndices(img.width, width);
  const ys = nearestIndices(img.height, height);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = ys[y] * img.width;
    for (let x = 0; x < width; x++) {
      const s = (row + xs[x]) * 3;
      const d = (y * width + x) * 3;
      out[d] = img.data[s];
      out[d + 1] = img.data[s + 1];
      out[d + 2] = img.data[s + 2];
    }
  }
  return { width, height, data: out };
}

/** PyTorch's `nearest_idx`: exact shortcuts for same size and 2x, else float32 arithmetic like its kernel. */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  const scale = Math.fround(inSize / outSize);
  for (let d = 0; d < outSize; d++) {
    if (outSize === inSize) idx[d] = d;
    else if (outSize === 2 * inSize) idx[d] = d >> 1;
    else idx[d] = Math.min(Math.floor(Math.fround(d * scale)), inSize - 1);
  }
  return idx;
}

/** What a canvas gives: `ctx.getImageData()` or any RGBA buffer of width x height x 4 bytes. */
export interface ImageDataLike {
  width: number;
  height: number;
  data: Uint8ClampedArray | Uint8Array;
}

/**
 * RGBA pixels (browser ImageData) to RGB8, dropping alpha without compositing, as PIL's
 * `convert('RGB')` does. Browsers may premultiply alpha internally, so semi-transparent pixels can
 * come back from a canvas with slightly different RGB than the file holds.
 */
export function fromImageData(image: ImageDataLike): RGB8 {
  const { width, height, data } = image ?? ({} as ImageDataLike);
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0) {
    throw new InvalidOptionError(`ImageData needs positive integer width and height, got ${width}x${height}`);
  }
  if (!(data instanceof Uint8ClampedArray || data instanceof Uint8Array) || data.length !== width * height * 4) {
    throw new InvalidOptionError(`ImageData of ${width}x${height} needs ${width * height * 4} RGBA bytes`);
  }
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < out.length; i += 4, j += 3) {
    out[j] = data[i];
    out[j + 1] = data[i + 1];
    out[j + 2] = data[i + 2];
  }
  return { width, height, data: out };
}
