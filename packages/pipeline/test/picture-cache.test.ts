import { createHash } from 'node:crypto';
import { InvalidOptionError, tensor } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import type { PicturePrefix } from '@llava-mini/prefusion';
import { describe, expect, it } from 'vitest';
import { PictureCache, pictureKey } from '../src/picture-cache.js';

const picture = (width: number, height: number, seed: number): RGB8 => ({ width, height, data: Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 31 + seed) & 255) });

/** A prefix of `bytes` bytes: real tensors of that size (one layer's keys and values, vision tokens). */
function prefix(bytes: number): PicturePrefix {
  const n = bytes / 4 / 3;
  const kv = () => tensor('float32', [1, 1, n, 1]);
  return { visionTokens: new Float32Array(n), keys: [kv()], values: [kv()], rows: n, bytes };
}

describe('pictureKey: SHA-256 over size and pixels (WebCrypto)', () => {
  it("equals node:crypto's SHA-256 of the header and the pixels' digest; one pixel or the shape changes it", async () => {
    const img = picture(5, 4, 1);
    const inner = createHash('sha256').update(img.data).digest();
    const expected = createHash('sha256').update('5x4:').update(inner).digest('hex');
    expect(await pictureKey(img)).toBe(expected);
    const changed = { ...img, data: Uint8Array.from(img.data) };
    changed.data[17] ^= 1;
    expect(await pictureKey(changed)).not.toBe(expected);
    expect(await pictureKey({ ...img, width: 4, height: 5 })).not.toBe(expected);
    // A view into a larger buffer hashes its own bytes only.
    const big = new Uint8Array(img.data.length + 8);
    big.set(img.data, 4);
    expect(await pictureKey({ ...img, data: big.subarray(4, 4 + img.data.length) })).toBe(expected);
  });
});

describe('PictureCache: bounded in bytes, least recently used out', () => {
  it('keeps the total under the bound, evicting the least recently used first; a hit refreshes', () => {
    const cache = new PictureCache(1200);
    cache.set('a', prefix(480));
    cache.set('b', prefix(480));
    expect(cache.get('a')?.bytes).toBe(480); // a is now the most recent
    cache.set('c', prefix(480)); // 1440 > 1200: b goes
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    expect(cache.get('c')).toBeDefined();
    expect(cache.stats).toEqual({ entries: 2, bytes: 960, maxBytes: 1200, hits: 3, misses: 1, evictions: 1 });
    // Replacing a key does not count it twice.
    cache.set('c', prefix(240));
    expect(cache.stats.bytes).toBe(720);
  });

  it('does not keep a prefix larger than the bound (nor evict for it); a bound of 0 keeps nothing', () => {
    const cache = new PictureCache(1000);
    cache.set('a', prefix(480));
    cache.set('huge', prefix(1200));
    expect(cache.get('huge')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    const off = new PictureCache(0);
    off.set('a', prefix(12));
    expect(off.stats.entries).toBe(0);
    off.clear();
    cache.clear();
    expect(cache.stats.bytes).toBe(0);
  });

  it('rejects a bound that is not a non-negative integer of bytes', () => {
    for (const bad of [-1, 1.5, Number.NaN]) expect(() => new PictureCache(bad)).toThrow(InvalidOptionError);
  });
});
