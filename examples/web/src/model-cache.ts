// Model files kept in the Cache API, so a second visit loads from disk instead of the network.
// Each file is stored only once it has arrived whole (Cache.put commits a complete response or
// nothing), and the library checks every file against the manifest's size and sha256, so a cut
// download or a damaged entry is found and fetched again rather than loaded.
import type { FetchFile } from '@llava-mini/pipeline/web';

export const CACHE_NAME = 'llava-mini-models-v1';

const hasCaches = (): boolean => typeof caches !== 'undefined';

export interface CachedFetch {
  fetch: FetchFile;
  /** Files answered from the cache so far. */
  readonly hits: Set<string>;
  /** Writes still running (a file's entry is complete once its write settles). */
  settle(): Promise<void>;
}

/** fetch() through the model cache; `store` false reads hits but writes nothing (not enough quota). */
export function cachedFetch(store: boolean): CachedFetch {
  const hits = new Set<string>();
  const writes: Promise<unknown>[] = [];
  return {
    hits,
    settle: async () => {
      await Promise.allSettled(writes);
    },
    fetch: async (url, init) => {
      if (!hasCaches()) return fetch(url, init);
      const cache = await caches.open(CACHE_NAME);
      const hit = await cache.match(url);
      if (hit) {
        hits.add(url);
        return hit;
      }
      const res = await fetch(url, init);
      // A failed or cut body makes put() reject and leaves no entry.
      if (res.ok && store) writes.push(cache.put(url, res.clone()).catch(() => undefined));
      return res;
    },
  };
}

/** Whether `url` is in the cache already. */
export async function isCached(url: string): Promise<boolean> {
  return hasCaches() && !!(await (await caches.open(CACHE_NAME)).match(url));
}

/** Drop cached entries (a damaged file: the next load fetches it again). */
export async function forget(urls: string[]): Promise<void> {
  if (!hasCaches()) return;
  const cache = await caches.open(CACHE_NAME);
  await Promise.all(urls.map((u) => cache.delete(u)));
}

/** Room the origin has left, in bytes (undefined where the browser does not say). */
export async function freeBytes(): Promise<number | undefined> {
  const estimate = await navigator.storage?.estimate?.().catch(() => undefined);
  if (!estimate?.quota) return undefined;
  return estimate.quota - (estimate.usage ?? 0);
}

/** Delete every cached model file; returns the bytes the origin's usage dropped by. */
export async function clearModelCache(): Promise<number> {
  if (!hasCaches()) return 0;
  const before = (await navigator.storage?.estimate?.().catch(() => undefined))?.usage ?? 0;
  await caches.delete(CACHE_NAME);
  const after = (await navigator.storage?.estimate?.().catch(() => undefined))?.usage ?? 0;
  return Math.max(0, before - after);
}
