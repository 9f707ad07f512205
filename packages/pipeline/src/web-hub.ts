// A hub id in the browser: `org/name[@revision]` of a repository that holds a converted folder
// (`llava-mini convert`'s output, uploaded as it is), read from the hub's resolve URLs and kept in
// the Cache API, so a reload loads from disk. The browser cannot convert a checkpoint; the Node
// entry can (it takes the same ids).
import type { FetchFile } from './web-files.js';
import type { HubId } from './hub/id.js';

export const HUB_ENDPOINT = 'https://huggingface.co';
/** The Cache API cache the model files are kept in. */
export const MODEL_CACHE = 'llava-mini-models';

/** Where a repository's files are at a revision: the hub's resolve URLs (its mirrors' too). */
export function hubFolderUrl(id: HubId | { repo: string; revision: string }, endpoint = HUB_ENDPOINT): URL {
  return new URL(`${endpoint.replace(/\/+$/, '')}/${id.repo}/resolve/${encodeURIComponent(id.revision)}/`);
}

const cachesApi = (): CacheStorage | undefined => (typeof caches === 'undefined' ? undefined : caches);

/**
 * fetch() through the Cache API: a stored response is answered from it, anything else is fetched and
 * stored when it succeeds. Without the Cache API (an insecure origin) it is plain fetch. What is
 * stored is checked as it is read (the manifest's size and sha256), and `forget` drops a bad entry.
 */
export function cachedFetch(cacheName = MODEL_CACHE): FetchFile & { forget(url: string): Promise<void> } {
  const get: FetchFile = async (url, init) => {
    const api = cachesApi();
    if (!api) return fetch(url, init);
    const cache = await api.open(cacheName);
    const hit = await cache.match(url);
    if (hit) return hit;
    const res = await fetch(url, init);
    if (res.ok) await cache.put(url, res.clone());
    return res;
  };
  return Object.assign(get, { forget: async (url: string) => void (await cachesApi()?.open(cacheName))?.delete(url) });
}

/**
 * The folder URL of a hub id at its commit: the manifest is asked of the hub at the revision (the
 * network first, the cache when offline), and its `X-Repo-Commit` pins every other file's URL, so
 * cached files of an older commit are never mixed with a newer manifest.
 */
export async function resolveHubFolder(id: HubId, endpoint: string, manifestFile: string, cacheName = MODEL_CACHE): Promise<{ base: URL; manifest: Response }> {
  const url = new URL(manifestFile, hubFolderUrl(id, endpoint)).href;
  const api = cachesApi();
  const cache = api ? await api.open(cacheName) : undefined;
  let res: Response;
  try {
    res = await fetch(url);
    if (res.ok) await cache?.put(url, res.clone());
  } catch (err) {
    const hit = await cache?.match(url);
    if (!hit) throw err;
    res = hit;
  }
  const commit = res.headers.get('x-repo-commit');
  return { base: hubFolderUrl(commit ? { repo: id.repo, revision: commit } : id, endpoint), manifest: res };
}
