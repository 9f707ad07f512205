// An image's size read from its header, before a browser decodes it: createImageBitmap(blob) decodes
// the whole picture first, so a PNG declaring 50,000 x 50,000 pixels in a few hundred bytes would
// take gigabytes before its size could be checked. Reads only the bytes it needs (a JPEG's segments
// are skipped by their lengths, never read), from a Blob, so it works in pages and Web Workers alike.

export interface HeaderSize {
  format: 'png' | 'gif' | 'webp' | 'jpeg' | 'bmp';
  width: number;
  height: number;
}

/** Most JPEG segments walked before the frame header (real files have a dozen or two). */
const MAX_JPEG_SEGMENTS = 1000;

const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));

async function bytes(blob: Blob, at: number, n: number): Promise<Uint8Array> {
  return new Uint8Array(await blob.slice(at, at + n).arrayBuffer());
}

/** The size the header of `blob` declares, or undefined for a format read here only by decoding it (AVIF, ICO, ...) or a header too short or malformed to say. */
export async function imageHeaderSize(blob: Blob): Promise<HeaderSize | undefined> {
  const b = await bytes(blob, 0, 32);
  if (b.length < 10) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] === 0x89 && ascii(b, 1, 3) === 'PNG' && ascii(b, 12, 4) === 'IHDR' && b.length >= 24) {
    return { format: 'png', width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (ascii(b, 0, 4) === 'GIF8') return { format: 'gif', width: view.getUint16(6, true), height: view.getUint16(8, true) };
  if (ascii(b, 0, 2) === 'BM' && b.length >= 26) return { format: 'bmp', width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true)) };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP' && b.length >= 30) {
    const chunk = ascii(b, 12, 4);
    if (chunk === 'VP8 ') return { format: 'webp', width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff };
    if (chunk === 'VP8L') {
      const bits = view.getUint32(21, true);
      return { format: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    if (chunk === 'VP8X') return { format: 'webp', width: (b[24] | (b[25] << 8) | (b[26] << 16)) + 1, height: (b[27] | (b[28] << 8) | (b[29] << 16)) + 1 };
    return undefined;
  }
  if (b[0] === 0xff && b[1] === 0xd8) return jpegSize(blob);
  return undefined;
}

/** Walks the JPEG's segments to its frame header (SOFn), reading 9 bytes a segment. */
async function jpegSize(blob: Blob): Promise<HeaderSize | undefined> {
  let at = 2;
  for (let n = 0; n < MAX_JPEG_SEGMENTS && at < blob.size; n++) {
    const s = await bytes(blob, at, 9);
    if (s.length < 4 || s[0] !== 0xff) return undefined;
    const marker = s[1];
    // Fill bytes, and markers that stand alone (no length).
    if (marker === 0xff) {
      at += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      at += 2;
      continue;
    }
    const length = (s[2] << 8) | s[3];
    // SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return s.length < 9 ? undefined : { format: 'jpeg', width: (s[7] << 8) | s[8], height: (s[5] << 8) | s[6] };
    }
    // The scan (or the end) before any frame header: not a JPEG to size.
    if (marker === 0xda || marker === 0xd9 || length < 2) return undefined;
    at += 2 + length;
  }
  return undefined;
}
