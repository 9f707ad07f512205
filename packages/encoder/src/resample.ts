import { InvalidOptionError } from '@llava-mini/core';
import { checkImage, type RGB8 } from './image.js';

/*
 * A port of Pillow's `Image.resize(size, Image.BICUBIC)` for 8-bit images (ImagingResample in
 * libImaging/Resample.c): a separable convolution with the a = -0.5 cubic kernel whose support
 * grows with the downscale factor (antialiasing), coefficients normalised to sum 1 in float64 and then
 * rounded to 22-bit fixed point, a horizontal pass over the rows the vertical pass needs, then the
 * vertical pass, each rounding to 8 bits. Same operations in the same order, so the bytes match.
 */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Pillow's bicubic_filter with a = -0.5 (Keys' kernel, support 2). */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}
const SUPPORT = 2.0;

/** Fixed-point taps for output positions first..first+count-1 of an inSize -> outSize pass. */
interface Taps {
  ksize: number;
  /** Per output: first input index and number of taps. */
  start: Int32Array;
  count: Int32Array;
  /** ksize coefficients per output, 22-bit fixed point. */
  k: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc, for a window of outputs (each output is independent). */
function taps(inSize: number, outSize: number, first: number, count: number): Taps {
  const scale = inSize / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(count);
  const n = new Int32Array(count);
  const k = new Int32Array(count * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let o = 0; o < count; o++) {
    const xx = first + o;
    const center = 0 + (xx + 0.5) * scale;
    // C casts truncate toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? w[x] / ww : w[x];
      k[o * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[o] = xmin;
    n[o] = xmax;
  }
  return { ksize, start, count: n, k };
}

/** Pillow's clip8: the accumulator's integer part, clamped to a byte. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** An image read row by row; `row(y)` gives its width*3 RGB bytes, valid until the next call. */
export interface RowSource {
  width: number;
  height: number;
  row(y: number): Uint8Array;
  /** True when row y holds the same pixels as row y - 1 (lets the resampler reuse its result). */
  repeats?(y: number): boolean;
}

function rowsOf(img: RGB8): RowSource {
  checkImage(img);
  return { width: img.width, height: img.height, row: (y) => img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3) };
}

/**
 * LLaVA's expand2square as a RowSource: the same pixels as `expandToSquare(img, background)` without
 * allocating the square canvas (a 100:1 panorama would need 100x its own memory).
 */
export function paddedToSquare(img: RGB8, background: readonly number[]): RowSource {
  checkImage(img);
  const { width: w, height: h } = img;
  if (w === h) return rowsOf(img);
  const side = Math.max(w, h);
  const left = w < h ? Math.floor((h - w) / 2) : 0;
  const top = w > h ? Math.floor((w - h) / 2) : 0;
  const canvasRow = new Uint8Array(side * 3);
  for (let i = 0; i < canvasRow.length; i += 3) canvasRow.set(background, i);
  const padRow = canvasRow.slice();
  const isPad = (y: number) => y < top || y >= top + h;
  return {
    width: side,
    height: side,
    repeats: (y) => y > 0 && isPad(y) && isPad(y - 1),
    row: (y) => {
      if (isPad(y)) return padRow;
      canvasRow.set(img.data.subarray((y - top) * w * 3, (y - top + 1) * w * 3), left * 3);
      return canvasRow;
    },
  };
}

/**
 * The window [x0, x0 + w) x [y0, y0 + h) of Pillow's bicubic resize of `src` to outW x outH. The
 * values equal the full resize followed by a crop, without computing the pixels the crop drops.
 */
export function resizeBicubicWindow(src: RGB8 | RowSource, outW: number, outH: number, x0: number, y0: number, w: number, h: number): RGB8 {
  const source = 'data' in src ? rowsOf(src) : src;
  for (const [name, v] of Object.entries({ outW, outH, w, h })) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidOptionError(`resize ${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isSafeInteger(x0) || !Number.isSafeInteger(y0) || x0 < 0 || y0 < 0 || x0 + w > outW || y0 + h > outH) {
    throw new InvalidOptionError(`window (${x0}, ${y0}, ${w}x${h}) is not inside the ${outW}x${outH} resize`);
  }
  const { width: inW, height: inH } = source;
  // Pillow skips a pass whose size does not change (and copies when neither does).
  const horiz = outW !== inW ? taps(inW, outW, x0, w) : undefined;
  const vert = outH !== inH ? taps(inH, outH, y0, h) : undefined;
  // The source rows the vertical pass reads, at the window's columns (horizontal pass or copy).
  const firstRow = vert ? vert.start[0] : y0;
  const lastRow = vert ? vert.start[h - 1] + vert.count[h - 1] : y0 + h;
  const rows = new Uint8Array((lastRow - firstRow) * w * 3);
  for (let y = firstRow; y < lastRow; y++) {
    const at = (y - firstRow) * w * 3;
    if (y > firstRow && source.repeats?.(y)) rows.copyWithin(at, at - w * 3, at);
    else if (horiz) horizontalRow(source.row(y), horiz, rows, at);
    else rows.set(source.row(y).subarray(x0 * 3, (x0 + w) * 3), at);
  }
  return { width: w, height: h, data: vert ? vertical(rows, w, vert, firstRow) : rows };
}

/** Pillow's bicubic resize of the whole image (`img.resize((width, height), Image.BICUBIC)`). */
export function resizeBicubic(img: RGB8, width: number, height: number): RGB8 {
  return resizeBicubicWindow(img, width, height, 0, 0, width, height);
}

/** ImagingResampleHorizontal_8bpc for one row, written to out[at..]. */
function horizontalRow(src: Uint8Array, t: Taps, out: Uint8Array, at: number): void {
  for (let xx = 0; xx < t.start.length; xx++) {
    const kBase = xx * t.ksize;
    let s0 = HALF;
    let s1 = HALF;
    let s2 = HALF;
    for (let x = 0, p = t.start[xx] * 3; x < t.count[xx]; x++, p += 3) {
      const kv = t.k[kBase + x];
      s0 += src[p] * kv;
      s1 += src[p + 1] * kv;
      s2 += src[p + 2] * kv;
    }
    out[at + xx * 3] = clip8(s0);
    out[at + xx * 3 + 1] = clip8(s1);
    out[at + xx * 3 + 2] = clip8(s2);
  }
}

/** ImagingResampleVertical_8bpc over `rows` (w pixels wide, row 0 = source row rowOffset). */
function vertical(rows: Uint8Array, w: number, t: Taps, rowOffset: number): Uint8Array {
  const outH = t.start.length;
  const out = new Uint8Array(w * outH * 3);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = t.start[yy] - rowOffset;
    const kBase = yy * t.ksize;
    for (let xx = 0; xx < w; xx++) {
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (let y = 0; y < t.count[yy]; y++) {
        const kv = t.k[kBase + y];
        const p = ((ymin + y) * w + xx) * 3;
        s0 += rows[p] * kv;
        s1 += rows[p + 1] * kv;
        s2 += rows[p + 2] * kv;
      }
      const d = (yy * w + xx) * 3;
      out[d] = clip8(s0);
      out[d + 1] = clip8(s1);
      out[d + 2] = clip8(s2);
    }
  }
  return out;
}
