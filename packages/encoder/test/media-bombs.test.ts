// Hostile and odd image files, each made here from a few bytes: headers declaring billions of pixels,
// animations of thousands of frames, SVG, and every format cut short or damaged. Each is refused with
// an ImageError of one line that names the input (and the limit, for a limit), or decoded right.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { ImageError } from '@llava-mini/core';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_PIXELS, loadImage, sniffImageFormat, type LoadImageOptions } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'encoder-bombs-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function refusal(input: string | Uint8Array, options: LoadImageOptions = {}): Promise<ImageError> {
  const err = await loadImage(input, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageError);
  const e = err as ImageError;
  expect(e.code).toBe('IMAGE');
  // One line, whatever the decoder printed (libjpeg repeats each warning on a line of its own).
  expect(e.message).not.toMatch(/\n/);
  return e;
}

const tooMany = (w: number, h: number) => new RegExp(`${w}x${h} = ${w * h} pixels is more than the limit of ${DEFAULT_MAX_PIXELS} \\(option maxPixels\\)`);
const small = () => sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 10, b: 10 } } });

function pngChunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(8 + data.length + 4);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(zlib.crc32(body), 8 + data.length);
  return out;
}

describe('decompression bombs are refused from the header, before any pixel is decoded', () => {
  it('PNG: 50,000 x 50,000 in a few hundred bytes', async () => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(50000, 0);
    ihdr.writeUInt32BE(50000, 4);
    ihdr.set([8, 2, 0, 0, 0], 8);
    // The first rows of zeros only: a decoder that started would fail on truncation, not on the limit.
    const idat = zlib.deflateSync(Buffer.alloc(4 * (1 + 3 * 50000)));
    const bomb = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', idat)]);
    expect(bomb.length).toBeLessThan(2000);
    expect((await refusal(bomb, { name: 'bomb.png' })).message).toMatch(tooMany(50000, 50000));
  });

  it('JPEG: a 16 x 16 file whose frame header says 50,000 x 50,000', async () => {
    const jpg = Buffer.from(await small().jpeg().toBuffer());
    const sof = jpg.indexOf(Buffer.from([0xff, 0xc0]));
    jpg.writeUInt16BE(50000, sof + 5);
    jpg.writeUInt16BE(50000, sof + 7);
    expect((await refusal(jpg, { name: 'bomb.jpg' })).message).toMatch(tooMany(50000, 50000));
  });

  it('WebP, lossy and lossless: 16,383 x 16,383 (the format maximum) in a few dozen bytes', async () => {
    const lossy = Buffer.from(await small().webp().toBuffer());
    const key = lossy.indexOf(Buffer.from([0x9d, 0x01, 0x2a])); // VP8 key frame start code, then 14-bit sizes
    lossy.writeUInt16LE(16383, key + 3);
    lossy.writeUInt16LE(16383, key + 5);
    expect((await refusal(lossy)).message).toMatch(tooMany(16383, 16383));
    const lossless = Buffer.from(await small().webp({ lossless: true }).toBuffer());
    const at = lossless.indexOf('VP8L') + 9; // signature byte 0x2f, then width - 1 and height - 1 in 14 bits each
    lossless.writeUInt32LE((lossless.readUInt32LE(at) & ~0x0fffffff) | 16382 | (16382 << 14), at);
    expect((await refusal(lossless)).message).toMatch(tooMany(16383, 16383));
  });

  it('GIF: a frame descriptor of 50,000 x 50,000', async () => {
    const gif = Buffer.from(await small().gif().toBuffer());
    const desc = gif.indexOf(0x2c, 13);
    for (const at of [6, desc + 5]) {
      gif.writeUInt16LE(50000, at);
      gif.writeUInt16LE(50000, at + 2);
    }
    expect((await refusal(gif)).message).toMatch(tooMany(50000, 50000));
  });

  it('the limit is an option', async () => {
    const png = await small().png().toBuffer();
    expect((await refusal(png, { maxPixels: 255 })).message).toMatch(/16x16 = 256 pixels is more than the limit of 255 \(option maxPixels\)/);
    expect((await refusal(png, { timeoutSeconds: 1.5 })).message).toMatch(/timeoutSeconds must be a whole number/);
    expect((await loadImage(png, { maxPixels: 256, timeoutSeconds: 1 })).width).toBe(16);
  });
});

describe('animations of thousands of frames give their first frame, as PIL does', () => {
  const N = 3000;
  // Frame i is black but for pixel i % 4, white, so neighbouring frames differ and none is merged away.
  const frames = Buffer.alloc(2 * 2 * 3 * N);
  for (let i = 0; i < N; i++) frames.fill(255, i * 12 + (i % 4) * 3, i * 12 + (i % 4) * 3 + 3);
  for (const format of ['gif', 'webp'] as const) {
    it(format, async () => {
      const bytes = await sharp(frames, { raw: { width: 2, height: 2 * N, channels: 3, pageHeight: 2 } })[format]({ lossless: true }).toBuffer();
      expect((await sharp(bytes).metadata()).pages).toBe(N);
      const img = await loadImage(bytes);
      expect([img.width, img.height, ...img.data]).toEqual([2, 2, 255, 255, 255, ...Array(9).fill(0)]);
    });
  }
});

describe('SVG never reaches a decoder', () => {
  const svg = '<?xml version="1.0"?>\n<!-- a drawing -->\n<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="8" height="8"><image xlink:href="file:///etc/passwd" width="8" height="8"/></svg>';

  it('is told from its first bytes and refused, whatever the file is called', async () => {
    expect(sniffImageFormat(Buffer.from(svg))).toBe('svg');
    expect(sniffImageFormat(Buffer.from(`\ufeff  ${svg}`))).toBe('svg');
    const p = path.join(root, 'innocent.png');
    fs.writeFileSync(p, svg);
    const err = await refusal(p);
    expect(err.message).toBe(`${p}: svg images are not supported (JPEG, PNG, WebP, GIF, TIFF, AVIF are)`);
    expect(err.cause).toBeUndefined();
  });

  it('other bytes are refused before a decoder sees them, without echoing them', async () => {
    for (const text of ['<html><body>secret</body></html>', 'P6\n1 1\n255\nabc', 'BM secret bitmap', '%PDF-1.4 secret']) {
      const err = await refusal(Buffer.from(text), { name: 'upload' });
      expect(err.message).toBe('upload: not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, AVIF)');
    }
  });

  it('a FIFO or a folder is refused without being opened for reading', async () => {
    expect((await refusal(root)).message).toBe(`${root}: not a file`);
    const fifo = path.join(root, 'pipe.png');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expect((await refusal(fifo)).message).toBe(`${fifo}: not a file`);
  });
});

describe('truncated and corrupt files of every format', () => {
  const formats = ['png', 'jpeg', 'webp', 'gif', 'tiff'] as const;
  for (const format of formats) {
    it(format, async () => {
      const whole = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 9, g: 99, b: 199 } } })
        .composite([{ input: { create: { width: 20, height: 20, channels: 3, background: { r: 250, g: 250, b: 0 } } }, left: 7, top: 9 }])
        [format]()
        .toBuffer();
      expect((await loadImage(whole)).width).toBe(64);
      for (const keep of [0.1, 0.5, 0.9]) {
        const msg = (await refusal(whole.subarray(0, Math.max(12, Math.floor(whole.length * keep))), { name: 'cut' })).message;
        expect(msg).toMatch(/^cut: (corrupt|not an image)/);
      }
      // Every 7th byte after the signature flipped.
      const bad = Buffer.from(whole);
      for (let i = 16; i < bad.length; i += 7) bad[i] ^= 0x55;
      expect((await refusal(bad, { name: 'bad' })).message).toMatch(/^bad: (corrupt|not an image|\d+x\d+ = \d+ pixels is more than)/);
    });
  }
});
