/**
 * The image formats LLaVA-Mini reads, told from a file's first bytes (its magic number), so that
 * bytes of any other kind are refused before a decoder parses them: an SVG would otherwise reach
 * librsvg (an XML parser that can follow references), and a format nobody meant to accept reaches
 * whatever loader libvips happens to have.
 */
export type SniffedFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'heif' | 'svg';

/** How many leading bytes `sniffImageFormat` looks at (an SVG's `<svg` may follow a prolog and comments). */
export const SNIFF_BYTES = 1024;

const startsWith = (b: Uint8Array, sig: readonly number[], at = 0) => b.length >= at + sig.length && sig.every((v, i) => b[at + i] === v);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/**
 * The format named by `head` (the first bytes of a file, SNIFF_BYTES or fewer), or undefined when
 * it is none of the raster formats accepted nor an SVG. 'heif' covers AVIF and HEIC alike (an ISO
 * media `ftyp` box); the decoder's header says which codec it holds.
 */
export function sniffImageFormat(head: Uint8Array): SniffedFormat | undefined {
  if (startsWith(head, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(head, ascii('GIF87a')) || startsWith(head, ascii('GIF89a'))) return 'gif';
  if (startsWith(head, ascii('RIFF')) && startsWith(head, ascii('WEBP'), 8)) return 'webp';
  // Classic and BigTIFF, little- and big-endian.
  if ([ascii('II*\0'), ascii('MM\0*'), ascii('II+\0'), ascii('MM\0+')].some((sig) => startsWith(head, sig))) return 'tiff';
  if (startsWith(head, ascii('ftyp'), 4)) return 'heif';
  return looksLikeSvg(head) ? 'svg' : undefined;
}

/** Text that opens with markup (after an optional BOM and blanks) and names an svg element early on. */
function looksLikeSvg(head: Uint8Array): boolean {
  let i = startsWith(head, [0xef, 0xbb, 0xbf]) ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  if (head[i] !== 0x3c) return false;
  let text = '';
  for (let j = i; j < Math.min(head.length, SNIFF_BYTES); j++) text += String.fromCharCode(head[j]);
  return /<svg[\s>/]/i.test(text);
}
