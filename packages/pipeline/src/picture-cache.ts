import { InvalidOptionError } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import type { PicturePrefix } from '@llava-mini/prefusion';

/** Default bound of a model's picture cache: about 28 standard pictures of the 8B release in fp16 (9.5 MB each), 5 HD ones. */
export const DEFAULT_PICTURE_CACHE_BYTES = 256 * 2 ** 20;

/**
 * SHA-256 over the picture's size and pixels, hex: SHA-256("{width}x{height}:" || SHA-256(rgb)).
 * WebCrypto, so the same key in Node (>= 20) and browsers; hashing the pixels first avoids copying
 * them next to the header. Undefined where WebCrypto's digest is missing (a browser page served over
 * plain http from another host): the caller then simply does not cache.
 */
export async function pictureKey(img: RGB8): Promise<string | undefined> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return undefined;
  // (decoded pixels live in ordinary ArrayBuffers; the cast only tells TypeScript it is not shared memory)
  const pixels = new Uint8Array(await subtle.digest('SHA-256', img.data as Uint8Array<ArrayBuffer>));
  const header = new TextEncoder().encode(`${img.width}x${img.height}:`);
  const both = new Uint8Array(header.length + pixels.length);
  both.set(header);
  both.set(pixels, header.length);
  const digest = new Uint8Array(await subtle.digest('SHA-256', both));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface PictureCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

/**
 * The pictures a model has already looked at: each picture's pre-fusion prefix (its rows' keys and
 * values in every pre-fusion layer and its vision tokens, see @llava-mini/prefusion), keyed by
 * `pictureKey`. A later question about the same pixels, in this conversation or another, then runs
 * only its text rows through pre-fusion and skips CLIP and the compressor.
 *
 * Policy: bounded in bytes (the prefixes' `bytes`), least recently used first out; a picture whose
 * prefix alone is over the bound is not kept. It is a memo of a pure function of the pixels (for one
 * loaded model), not conversation state: a conversation holds its own pictures' prefixes for its
 * follow-ups, so an eviction here costs recomputation for new conversations only. Video frames go
 * here too (keyed apart from images: their preprocessing differs), so a new conversation or a
 * stateless request about a video seen before skips CLIP and the compressor for every frame still
 * held (and, when it holds them all, ffprobe and ffmpeg: VisionPipeline.knownVideo); a video longer than the bound keeps its most recent frames and gains nothing on a second
 * pass, which reads its frames in order (least recently used first out).
 */
export class PictureCache {
  private readonly entries = new Map<string, PicturePrefix>();
  private held = 0;
  private counts = { hits: 0, misses: 0, evictions: 0 };

  constructor(readonly maxBytes = DEFAULT_PICTURE_CACHE_BYTES) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new InvalidOptionError(`the picture cache bound must be a non-negative integer of bytes, got ${maxBytes}`);
  }

  /** The prefix of `key`, marked most recently used; counts a hit or a miss. */
  get(key: string): PicturePrefix | undefined {
    const prefix = this.entries.get(key);
    if (!prefix) {
      this.counts.misses++;
      return undefined;
    }
    this.counts.hits++;
    this.entries.delete(key);
    this.entries.set(key, prefix);
    return prefix;
  }

  /** Whether `key` is held (no hit or miss counted, its place in the order kept). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Keep `prefix` under `key`, evicting the least recently used pictures until it fits. */
  set(key: string, prefix: PicturePrefix): void {
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.held -= old.bytes;
    }
    if (prefix.bytes > this.maxBytes) return;
    for (const [k, p] of this.entries) {
      if (this.held + prefix.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.held -= p.bytes;
      this.counts.evictions++;
    }
    this.entries.set(key, prefix);
    this.held += prefix.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.held = 0;
  }

  get stats(): PictureCacheStats {
    return { entries: this.entries.size, bytes: this.held, maxBytes: this.maxBytes, ...this.counts };
  }
}
