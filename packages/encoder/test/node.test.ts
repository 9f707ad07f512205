import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ImageError } from '@llava-mini/core';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { fromImageData, loadImage, processImage, type RGB8 } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'encoder-images-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const W = 6;
const H = 4;
const COLOURS = [
  [200, 100, 50],
  [10, 240, 30],
  [0, 0, 255],
  [255, 255, 255],
];
/** A 6 x 4 RGB pattern of four colours: few enough for GIF and palette PNG to hold exactly. */
const PATTERN = Buffer.alloc(W * H * 3);
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) PATTERN.set(COLOURS[(x + 2 * y) % 4], (y * W + x) * 3);
const pattern = () => sharp(PATTERN, { raw: { width: W, height: H, channels: 3 } });
const solid = (rgb: number[], w = 8, h = 8) => sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const first = (img: RGB8) => [...img.data.subarray(0, 3)];

async function file(name: string, bytes: Uint8Array | string): Promise<string> {
  const p = path.join(root, name);
  fs.writeFileSync(p, bytes);
  return p;
}

describe('every supported format decodes to the pixels it holds', () => {
  it.each([
    ['png', () => pattern().png()],
    ['webp (lossless)', () => pattern().webp({ lossless: true })],
    ['gif', () => pattern().gif()],
    ['tiff (lzw)', () => pattern().tiff({ compression: 'lzw' })],
    ['avif (lossless)', () => pattern().avif({ lossless: true })],
  ])('%s, from a file and from a buffer', async (name, make) => {
    const bytes = await make().toBuffer();
    const fromFile = await loadImage(await file(`pattern.${name.split(' ')[0]}`, bytes));
    expect([fromFile.width, fromFile.height]).toEqual([W, H]);
    expect(maxDiff(fromFile.data, PATTERN)).toBe(0);
    expect(await loadImage(bytes)).toEqual(fromFile);
    expect(await loadImage(new Uint8Array(bytes))).toEqual(fromFile);
  });

  it('jpeg (quality 100, solid colour) within JPEG rounding', async () => {
    const img = await loadImage(await solid([200, 100, 50]).jpeg({ quality: 100 }).toBuffer());
    expect([img.width, img.height]).toEqual([8, 8]);
    for (let i = 0; i < img.data.length; i += 3) expect(maxDiff(img.data.subarray(i, i + 3), [200, 100, 50])).toBeLessThanOrEqual(2);
  });

  it('an animated GIF gives its first frame', async () => {
    const frames = Buffer.concat([PATTERN, Buffer.alloc(W * H * 3, 0)]);
    const gif = await sharp(frames, { raw: { width: W, height: 2 * H, channels: 3, pageHeight: H } }).gif().toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const img = await loadImage(gif);
    expect([img.width, img.height]).toEqual([W, H]);
    expect(maxDiff(img.data, PATTERN)).toBe(0);
  });
});

describe("other layouts become RGB as PIL's convert('RGB') makes them", () => {
  it('greyscale (L) is replicated into R, G and B', async () => {
    const png = await sharp(Buffer.alloc(12, 77), { raw: { width: 4, height: 3, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(1);
    const img = await loadImage(png);
    expect([...img.data]).toEqual(new Array(36).fill(77));
  });

  it('greyscale with alpha (LA): grey replicated, alpha dropped', async () => {
    const png = await sharp(Buffer.from([77, 0, 150, 255]), { raw: { width: 2, height: 1, channels: 2 } }).toColourspace('b-w').png().toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(2);
    expect([...(await loadImage(png)).data]).toEqual([77, 77, 77, 150, 150, 150]);
  });

  it('palette PNG: the palette colours', async () => {
    const png = await pattern().png({ palette: true }).toBuffer();
    expect((await sharp(png).metadata()).isPalette).toBe(true);
    expect(maxDiff((await loadImage(png)).data, PATTERN)).toBe(0);
  });

  it('RGBA: alpha dropped without compositing (a fully transparent pixel keeps its RGB)', async () => {
    const png = await sharp(Buffer.from([10, 20, 30, 0, 40, 50, 60, 128]), { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
    expect([...(await loadImage(png)).data]).toEqual([10, 20, 30, 40, 50, 60]);
  });

  // Expected values checked once against Pillow 9.4.0 on files made the same way (see README).
  it('16-bit RGB keeps the high byte of each sample (PIL unpacks RGB;16B)', async () => {
    const png = await sharp(new Uint16Array([0x1234, 0xabcd, 0x00ff, 300, 100, 65535]), { raw: { width: 2, height: 1, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png).metadata()).depth).toBe('ushort');
    expect([...(await loadImage(png)).data]).toEqual([0x12, 0xab, 0x00, 1, 0, 255]);
  });

  it('16-bit greyscale is clamped into 0..255 (PIL mode I), but 16-bit grey + alpha keeps the high byte', async () => {
    const grey = await sharp(new Uint16Array([300, 100, 0x1234]), { raw: { width: 3, height: 1, channels: 1 } }).toColourspace('grey16').png().toBuffer();
    expect([...(await loadImage(grey)).data]).toEqual([255, 255, 255, 100, 100, 100, 255, 255, 255]);
    const la = await sharp(new Uint16Array([0x1234, 9, 300, 65535]), { raw: { width: 2, height: 1, channels: 2 } }).toColourspace('grey16').png().toBuffer();
    expect([...(await loadImage(la)).data]).toEqual([0x12, 0x12, 0x12, 1, 1, 1]);
  });

  it("CMYK uses PIL's naive formula, not an ICC profile", async () => {
    const jpg = await solid([200, 100, 50], 4, 2).jpeg({ quality: 100 }).toColourspace('cmyk').toBuffer();
    expect((await sharp(jpg).metadata()).space).toBe('cmyk');
    // The file stores C, M, Y, K = 0, 159, 235, 48; PIL gives (207, 78, 16) where a colour-managed
    // conversion (sharp's default) gives about (199, 94, 21).
    const img = await loadImage(jpg);
    for (let i = 0; i < img.data.length; i += 3) expect([...img.data.subarray(i, i + 3)]).toEqual([207, 78, 16]);
  });
});

describe('EXIF orientation', () => {
  const coords = Buffer.alloc(3 * 2 * 3);
  for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) coords.set([x * 50, y * 100, 7], (y * 3 + x) * 3);

  it('orientation 6 rotates 90 degrees clockwise: displayed (x, y) = stored (y, H - 1 - x)', async () => {
    const png = await sharp(coords, { raw: { width: 3, height: 2, channels: 3 } }).png().withMetadata({ orientation: 6 }).toBuffer();
    const img = await loadImage(png);
    expect([img.width, img.height]).toEqual([2, 3]);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 2; x++) expect([...img.data.subarray((y * 2 + x) * 3, (y * 2 + x) * 3 + 2)]).toEqual([y * 50, (2 - 1 - x) * 100]);
    }
    const stored = await loadImage(png, { autoOrient: false });
    expect([stored.width, stored.height]).toEqual([3, 2]);
    expect(stored.data).toEqual(new Uint8Array(coords));
  });
});

describe('errors are ImageErrors naming the input', () => {
  async function refusal(input: string | Uint8Array, options = {}): Promise<ImageError> {
    try {
      await loadImage(input, options);
    } catch (err) {
      expect(err).toBeInstanceOf(ImageError);
      expect((err as ImageError).code).toBe('IMAGE');
      return err as ImageError;
    }
    throw new Error('expected loadImage to fail');
  }

  it('zero-byte file and empty buffer', async () => {
    const p = await file('empty.png', new Uint8Array(0));
    const err = await refusal(p);
    expect(err.message).toContain(p);
    expect(err.message).toMatch(/empty/);
    expect((await refusal(new Uint8Array(0))).message).toMatch(/<buffer>: empty/);
  });

  it('missing file', async () => {
    expect((await refusal(path.join(root, 'nope.png'))).message).toMatch(/nope\.png: file not found/);
  });

  it('unsupported: a text file, and an SVG (which PIL cannot open either)', async () => {
    const txt = await file('notes.txt', 'this is not an image at all');
    const err = await refusal(txt);
    expect(err.message).toContain('notes.txt');
    expect(err.message).toMatch(/supported format/);
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
    expect((await refusal(svg, { name: 'drawing.svg' })).message).toMatch(/drawing\.svg: svg images are not supported/);
  });

  it('truncated PNG and JPEG, corrupt PNG data', async () => {
    const png = await pattern().png().toBuffer();
    expect((await refusal(await file('cut.png', png.subarray(0, png.length - 20)))).message).toMatch(/cut\.png: corrupt or truncated/);
    const jpg = await solid([1, 2, 3], 64, 64).jpeg().toBuffer();
    expect((await refusal(jpg.subarray(0, Math.floor(jpg.length * 0.8)))).message).toMatch(/corrupt|truncated|premature/i);
    const bad = Buffer.from(png);
    const idat = bad.indexOf('IDAT');
    bad[idat + 6] ^= 0xff;
    bad[idat + 9] ^= 0xff;
    expect((await refusal(bad)).message).toMatch(/corrupt or truncated/);
  });

  it('a 20000 x 20000 image is refused from its header, before decoding', async () => {
    // A valid 1-bit greyscale PNG (400 M pixels, 220 kB): decoding it to RGB would need 1.2 GB.
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(20000, 0);
    ihdr.writeUInt32BE(20000, 4);
    ihdr.set([1, 0, 0, 0, 0], 8);
    const idat = zlib.deflateSync(Buffer.alloc(20000 * (1 + 2500)), { level: 1 });
    const valid = png([chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
    const meta = await sharp(valid, { limitInputPixels: false }).metadata();
    expect([meta.width, meta.height]).toEqual([20000, 20000]);
    const t0 = Date.now();
    const err = await refusal(await file('huge.png', valid));
    expect(err.message).toMatch(/huge\.png: 20000x20000 = 400000000 pixels is more than the limit of 100000000/);
    expect(Date.now() - t0).toBeLessThan(2000);
    // Header plus the first bytes of the pixel data (a truncated file): still "too many pixels", not
    // "truncated", so the check comes before any decoding.
    const headerOnly = png([chunk('IHDR', ihdr), chunk('IDAT', idat).subarray(0, 64)]);
    expect((await refusal(headerOnly)).message).toMatch(/more than the limit/);
  });

  it('maxPixels is configurable', async () => {
    const png = await pattern().png().toBuffer();
    expect((await refusal(png, { maxPixels: 23 })).message).toMatch(/24 pixels is more than the limit of 23/);
    expect((await loadImage(png, { maxPixels: 24 })).width).toBe(W);
  });
});

describe('Node and browser paths give identical numbers', () => {
  it('canvas ImageData (RGBA) through fromImageData equals loadImage of the same pixels', async () => {
    const rgba = Buffer.alloc(20 * 13 * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (i * 37 + (i >> 5) * 11) % 256;
    const png = await sharp(rgba, { raw: { width: 20, height: 13, channels: 4 } }).png().toBuffer();
    const node = await loadImage(png);
    // What a browser's getImageData would hold for this PNG (straight alpha).
    const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const browser = fromImageData({ width: info.width, height: info.height, data: new Uint8ClampedArray(data) });
    expect(browser).toEqual(node);
    for (const imageAspectRatio of ['pad', 'square'] as const) {
      const config = { imageSize: 14, imageAspectRatio, resolutionRatio: 2 };
      expect(processImage(browser, config).data).toEqual(processImage(node, config).data);
    }
  });
});

// ---- PNG assembly for crafted files -------------------------------------------------------------
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}
function png(chunks: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunks]);
}
