// The page of browser-pixels.test.ts: resolveBrowserInput's pixel limit in Chromium, on images that
// declare far more pixels than they hold (refused from their header) and on real pictures, drawables
// and frames past a small maxPixels. Leaves what each gave on window.__result.
import { resolveBrowserInput, type WebInput } from '../src/browser-input.js';

export interface PixelsResult {
  /** Input name -> 'ok WxH' or the error's name and message. */
  outcomes: Record<string, string>;
  error?: string;
}

const u32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const le16 = (n: number) => [n & 255, (n >>> 8) & 255];
const le24 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255];
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** Headers declaring huge pictures in a few hundred bytes (a JPEG's frame header after 120 kB of other segments). */
function bombs(): Record<string, Uint8Array> {
  const png = [0x89, ...ascii('PNG\r\n\x1a\n'), ...u32(13), ...ascii('IHDR'), ...u32(50_000), ...u32(50_000), 8, 2, 0, 0, 0, 0, 0, 0, 0, ...u32(0), ...ascii('IEND'), 0xae, 0x42, 0x60, 0x82];
  const app = (n: number) => [0xff, 0xe1, (n >> 8) & 255, n & 255, ...new Array(n - 2).fill(0x41)];
  const jpeg = [0xff, 0xd8, ...app(60_000), ...app(60_000), 0xff, 0xc0, 0, 17, 8, ...[50_000 >> 8, 50_000 & 255], ...[50_000 >> 8, 50_000 & 255], 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9];
  const webpBody = [...ascii('WEBP'), ...ascii('VP8X'), ...[10, 0, 0, 0], 0, 0, 0, 0, ...le24(16_382), ...le24(16_382)];
  const webp = [...ascii('RIFF'), ...[webpBody.length, 0, 0, 0], ...webpBody];
  const gif = [...ascii('GIF89a'), ...le16(65_535), ...le16(65_535), 0, 0, 0, 0x3b];
  return { png: new Uint8Array(png), jpeg: new Uint8Array(jpeg), webp: new Uint8Array(webp), gif: new Uint8Array(gif) };
}

async function outcome(input: WebInput, maxPixels?: number): Promise<string> {
  try {
    const p = await resolveBrowserInput(input, { maxPixels });
    if (p.kind === 'images') return `ok ${p.images[0].width}x${p.images[0].height}`;
    let n = 0;
    for await (const _ of p.frames) n++;
    return `ok ${n} frames`;
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  }
}

async function video(): Promise<HTMLVideoElement | undefined> {
  const v = document.createElement('video');
  v.muted = true;
  v.src = 'shapes.mp4';
  const loaded = await new Promise<boolean>((resolve) => {
    v.onloadedmetadata = () => resolve(true);
    v.onerror = () => resolve(false);
    setTimeout(() => resolve(false), 10_000);
  });
  return loaded ? v : undefined;
}

async function main(): Promise<PixelsResult> {
  const outcomes: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(bombs())) outcomes[`${name} bomb`] = await outcome(new Blob([bytes as Uint8Array<ArrayBuffer>]));
  const canvas = new OffscreenCanvas(64, 48);
  const ctx = canvas.getContext('2d') as OffscreenCanvasRenderingContext2D;
  ctx.fillStyle = '#c33';
  ctx.fillRect(0, 0, 64, 48);
  const png = await canvas.convertToBlob({ type: 'image/png' });
  const jpeg = await canvas.convertToBlob({ type: 'image/jpeg' });
  const webp = await canvas.convertToBlob({ type: 'image/webp' });
  const bitmap = await createImageBitmap(canvas);
  const data = ctx.getImageData(0, 0, 64, 48);
  outcomes['png'] = await outcome(png);
  outcomes['jpeg'] = await outcome(jpeg);
  outcomes['webp'] = await outcome(webp);
  outcomes['png, maxPixels 3000'] = await outcome(png, 3000);
  outcomes['jpeg, maxPixels 3000'] = await outcome(jpeg, 3000);
  outcomes['webp, maxPixels 3000'] = await outcome(webp, 3000);
  outcomes['png by URL, maxPixels 3000'] = await outcome(URL.createObjectURL(png), 3000);
  outcomes['canvas, maxPixels 3000'] = await outcome(canvas as unknown as WebInput, 3000);
  outcomes['bitmap, maxPixels 3000'] = await outcome(bitmap, 3000);
  outcomes['ImageData, maxPixels 3000'] = await outcome(data, 3000);
  outcomes['frames'] = await outcome({ frames: [data, data] });
  outcomes['frames, maxPixels 3000'] = await outcome({ frames: [data, data] }, 3000);
  const v = await video();
  outcomes['video'] = v ? await outcome({ video: v, fps: 1 }) : 'unsupported';
  outcomes['video, maxPixels 3000'] = v ? await outcome({ video: v, fps: 1 }, 3000) : 'unsupported';
  return { outcomes };
}

main().then(
  (r) => ((window as unknown as { __result: PixelsResult }).__result = r),
  (err: Error) => ((window as unknown as { __result: PixelsResult }).__result = { outcomes: {}, error: `${err.name}: ${err.message}\n${err.stack}` }),
);
