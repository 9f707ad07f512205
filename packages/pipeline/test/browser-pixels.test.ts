// The browser entry's pixel limit (maxPixels, as in Node) in headless Chromium: images declaring
// 50,000 x 50,000 pixels in a few hundred bytes are refused from their header, before
// createImageBitmap would decode them; real pictures, drawables, frames and a <video> past a small
// limit are refused before they are drawn, with the limit named.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PixelsResult } from './browser-pixels-page.js';
import { bundlePage, HAVE_CHROMIUM, launchChromium, runPage, serve } from './chromium.js';

describe.skipIf(!HAVE_CHROMIUM)('maxPixels in Chromium', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-browser-pixels-'));
  let site: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let r: PixelsResult['outcomes'];

  beforeAll(async () => {
    await bundlePage(path.join(__dirname, 'browser-pixels-page.ts'), root);
    fs.copyFileSync(path.join(__dirname, '../../../examples/assets/shapes.mp4'), path.join(root, 'shapes.mp4'));
    site = await serve({ '/': root });
    browser = await launchChromium();
    const run = await runPage<PixelsResult>(browser, site.origin, `${site.origin}/index.html`, 60_000);
    if (run.result.error) throw new Error(`${run.result.error}\n${run.log.join('\n')}`);
    r = run.result.outcomes;
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await site?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('refuses PNG, JPEG (frame header after 120 kB), WebP and GIF bombs from their header, with the default limit named', () => {
    expect(r['png bomb']).toBe('ImageError: blob: 50000x50000 = 2500000000 pixels is more than the limit of 100000000 (option maxPixels)');
    expect(r['jpeg bomb']).toBe('ImageError: blob: 50000x50000 = 2500000000 pixels is more than the limit of 100000000 (option maxPixels)');
    expect(r['webp bomb']).toBe('ImageError: blob: 16383x16383 = 268402689 pixels is more than the limit of 100000000 (option maxPixels)');
    expect(r['gif bomb']).toBe('ImageError: blob: 65535x65535 = 4294836225 pixels is more than the limit of 100000000 (option maxPixels)');
  });

  it('reads real pictures under the limit, and refuses each kind of input past a small one', () => {
    for (const k of ['png', 'jpeg', 'webp']) expect(r[k], k).toBe('ok 64x48');
    for (const k of ['png', 'jpeg', 'webp', 'png by URL']) expect(r[`${k}, maxPixels 3000`], k).toMatch(/^ImageError: blob: 64x48 = 3072 pixels is more than the limit of 3000 \(option maxPixels\)$/);
    expect(r['canvas, maxPixels 3000']).toMatch(/^ImageError: OffscreenCanvas: 64x48 = 3072 pixels is more than the limit of 3000 \(option maxPixels\)$/);
    expect(r['bitmap, maxPixels 3000']).toMatch(/^ImageError: ImageBitmap: 64x48 = 3072 pixels is more than the limit of 3000/);
    expect(r['ImageData, maxPixels 3000']).toMatch(/^ImageError: ImageData: 64x48 = 3072 pixels is more than the limit of 3000/);
    expect(r.frames).toBe('ok 2 frames');
    expect(r['frames, maxPixels 3000']).toMatch(/^VideoError: frames: 64x48 = 3072 pixels a frame is more than the limit of 3000 \(option maxPixels\)$/);
  });

  it('refuses a <video> whose frames are past the limit before drawing one', () => {
    // Chromium builds without H.264 cannot play the clip: then there is nothing to check here.
    if (r.video === 'unsupported') return console.log('this Chromium does not play H.264: the <video> case was not run');
    expect(r.video).toMatch(/^ok \d+ frames$/);
    expect(r['video, maxPixels 3000']).toMatch(/^VideoError: .*shapes\.mp4: \d+x\d+ = \d+ pixels a frame is more than the limit of 3000 \(option maxPixels\)$/);
  });
});
