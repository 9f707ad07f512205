import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { errorMessage, HubError } from '@llava-mini/core';
import { withLock } from './lock.js';

/** A file of a repository at one commit, as the hub lists it. */
export interface RemoteFile {
  path: string;
  size: number;
  /** The git blob id (sha1 of `blob <size>\0` and the bytes): the ETag of a file kept in git. */
  oid: string;
  /** sha256 of the bytes, for a file kept in LFS (then the ETag, and the blob's name in the cache). */
  sha256?: string;
}

/** The name of a file's blob in the cache, as huggingface_hub names it: the ETag. */
export const blobName = (file: RemoteFile): string => file.sha256 ?? file.oid;

export interface FetchOptions {
  repo: string;
  /** Sent only to this origin (the hub's), never to the storage a download is redirected to. */
  token?: string;
  hubOrigin: string;
  /** Called with each chunk's byte count. */
  onBytes?: (bytes: number) => void;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 10;

/** GET `url`, following redirects by hand so that the token goes to the hub alone. */
async function get(url: string, headers: Record<string, string>, o: FetchOptions): Promise<Response> {
  let target = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const auth: Record<string, string> = o.token && target.origin === o.hubOrigin ? { authorization: `Bearer ${o.token}` } : {};
    let res: Response;
    try {
      res = await fetch(target, { headers: { ...headers, ...auth }, redirect: 'manual', signal: o.signal });
    } catch (err) {
      throw new HubError(o.repo, `cannot reach ${target.origin}: ${errorMessage((err as Error).cause ?? err)}`, { cause: err });
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return res;
    await res.body?.cancel();
    target = new URL(location, target);
  }
  throw new HubError(o.repo, `more than ${MAX_REDIRECTS} redirects for ${url}`);
}

/**
 * Download `file` from `url` to `dest`, resuming from `dest`.incomplete (what an interrupted run
 * left) with a Range request, and checking its size and hash before it is renamed into place. A
 * file that does not match is deleted and refused. `dest`.lock keeps one writer at a time.
 */
export async function downloadFile(url: string, dest: string, file: RemoteFile, o: FetchOptions): Promise<void> {
  await withLock(`${dest}.lock`, async () => {
    // Another process may have finished it while this one waited.
    if (!fs.existsSync(dest) || fs.statSync(dest).size !== file.size) await transfer(url, dest, file, o);
  });
}

async function transfer(url: string, dest: string, file: RemoteFile, o: FetchOptions): Promise<void> {
  const partial = `${dest}.incomplete`;
  let start = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  if (start > file.size) start = 0;
  if (start < file.size) {
    const res = await get(url, start > 0 ? { range: `bytes=${start}-` } : {}, o);
    if (res.status === 401 || res.status === 403) throw new HubError(o.repo, `${file.path}: access denied (${res.status}); for a gated or private repository set HF_TOKEN`, { status: res.status });
    if (res.status !== 200 && res.status !== 206) throw new HubError(o.repo, `${file.path}: the server answered ${res.status}`, { status: res.status });
    // A server that ignores Range sends the whole file: start over.
    if (res.status === 200) start = 0;
    await writeBody(res, partial, start, file, o);
  }
  await verify(partial, file, o.repo);
  fs.renameSync(partial, dest);
}

async function writeBody(res: Response, partial: string, start: number, file: RemoteFile, o: FetchOptions): Promise<void> {
  const out = fs.createWriteStream(partial, { flags: start > 0 ? 'a' : 'w' });
  let written = start;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      written += chunk.byteLength;
      o.onBytes?.(chunk.byteLength);
    }
  } catch (err) {
    throw new HubError(o.repo, `${file.path}: the download stopped at ${written} of ${file.size} bytes (${errorMessage(err)}); run again to resume`, { cause: err });
  } finally {
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

/** The hub's checks: the size, then sha256 for an LFS file or the git blob id for a file kept in git. */
async function verify(file: string, remote: RemoteFile, repo: string): Promise<void> {
  const size = fs.statSync(file).size;
  const refuse = (what: string) => {
    fs.rmSync(file, { force: true });
    return new HubError(repo, `${remote.path}: ${what}; the download was deleted, run again to fetch it anew`);
  };
  if (size !== remote.size) throw refuse(`${size} bytes downloaded, the hub lists ${remote.size}`);
  const hash = createHash(remote.sha256 ? 'sha256' : 'sha1');
  if (!remote.sha256) hash.update(`blob ${size}\0`);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  const got = hash.digest('hex');
  const want = blobName(remote);
  if (got !== want) throw refuse(`its ${remote.sha256 ? 'sha256' : 'git blob id'} is ${got}, the hub's is ${want}`);
}
