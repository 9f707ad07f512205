import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, HubError, type ProgressCallback } from '@llava-mini/core';
import { blobName, downloadFile, type RemoteFile } from './download.js';
import { formatHubId, type HubId, isCommit } from './id.js';
import type { HubSettings } from './settings.js';

/**
 * One repository in the hub cache, in huggingface_hub's layout (so what the Python tools fetched
 * is found, and the other way round): models--org--name/ with blobs/<etag>, snapshots/<commit>/<path>
 * (links to the blobs) and refs/<branch> (the commit a branch pointed at when last asked).
 */
export class RepoCache {
  readonly root: string;
  constructor(
    readonly id: HubId,
    readonly settings: HubSettings,
  ) {
    this.root = path.join(settings.cacheDir, repoFolderName(id.repo));
  }

  snapshotDir(commit: string): string {
    return path.join(this.root, 'snapshots', commit);
  }

  /** The commit the revision names: asked of the hub, or, offline, read from refs/. */
  async commit(): Promise<string> {
    const { repo, revision } = this.id;
    if (this.settings.offline) {
      if (isCommit(revision)) return revision;
      const ref = path.join(this.root, 'refs', revision);
      if (!fs.existsSync(ref)) throw new HubError(formatHubId(this.id), 'is not in the cache, and HF_HUB_OFFLINE=1 forbids downloading it');
      return fs.readFileSync(ref, 'utf8').trim();
    }
    const { modelInfo } = await hubClient();
    const info = await hubCall(this.id, () => modelInfo({ name: repo, revision, hubUrl: this.settings.endpoint, accessToken: this.settings.token, additionalFields: ['sha'] }));
    const commit = info.sha;
    if (typeof commit !== 'string' || !isCommit(commit)) throw new HubError(formatHubId(this.id), `the hub did not name the commit of ${revision}`);
    if (revision !== commit) {
      fs.mkdirSync(path.join(this.root, 'refs'), { recursive: true });
      fs.writeFileSync(path.join(this.root, 'refs', revision), commit);
    }
    return commit;
  }

  /**
   * The files `wanted` keeps of the commit, downloaded where the cache lacks them; returns the
   * snapshot folder. Offline, the snapshot must already be there.
   */
  async fetch(commit: string, wanted: (file: string) => boolean, onProgress?: ProgressCallback): Promise<string> {
    const dir = this.snapshotDir(commit);
    if (this.settings.offline) {
      if (!fs.existsSync(dir)) throw new HubError(formatHubId(this.id), `commit ${commit} is not in the cache, and HF_HUB_OFFLINE=1 forbids downloading it`);
      return dir;
    }
    const files = (await this.list(commit)).filter((f) => wanted(f.path));
    const missing = files.filter((f) => !present(path.join(dir, f.path), f.size));
    const total = missing.reduce((n, f) => n + f.size, 0);
    checkFreeSpace(this.id, this.root, total - missing.reduce((n, f) => n + partialBytes(this.blobPath(f)), 0));
    let done = 0;
    for (const file of missing) {
      const blob = this.blobPath(file);
      fs.mkdirSync(path.dirname(blob), { recursive: true });
      if (!present(blob, file.size)) {
        const url = `${this.settings.endpoint}/${this.id.repo}/resolve/${commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
        await downloadFile(url, blob, file, {
          repo: formatHubId(this.id),
          token: this.settings.token,
          hubOrigin: new URL(this.settings.endpoint).origin,
          onBytes: (n) => onProgress?.({ task: 'download', item: file.path, done: (done += n), total, unit: 'bytes' }),
        });
      } else {
        done += file.size;
      }
      link(blob, path.join(dir, file.path));
    }
    return dir;
  }

  private blobPath(file: RemoteFile): string {
    return path.join(this.root, 'blobs', blobName(file));
  }

  private async list(commit: string): Promise<RemoteFile[]> {
    const files: RemoteFile[] = [];
    const { listFiles } = await hubClient();
    await hubCall(this.id, async () => {
      for await (const e of listFiles({ repo: this.id.repo, revision: commit, recursive: true, hubUrl: this.settings.endpoint, accessToken: this.settings.token })) {
        if (e.type === 'file') files.push({ path: e.path, size: e.size, oid: e.oid ?? '', sha256: e.lfs?.oid });
      }
    });
    return files;
  }
}

// Loaded when a hub id is used: every other load and CLI start stays without it (about 80 ms).
const hubClient = () => import('@huggingface/hub');

/** A model repository's folder in the hub cache, as huggingface_hub names it. */
export const repoFolderName = (repo: string): string => `models--${repo.replaceAll('/', '--')}`;

/** A call through @huggingface/hub, its failures as HubError with what to do about them. */
async function hubCall<T>(id: HubId, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const status = (err as { statusCode?: number }).statusCode;
    const name = formatHubId(id);
    if (status === 401 || status === 403) throw new HubError(name, `access denied (${status}): a gated or private repository needs a token with access (HF_TOKEN)`, { cause: err, status });
    if (status === 404) throw new HubError(name, `no such repository or revision on the hub`, { cause: err, status });
    if (status !== undefined) throw new HubError(name, `the hub answered ${status}: ${errorMessage(err)}`, { cause: err, status });
    throw new HubError(name, `cannot reach the hub: ${errorMessage((err as Error).cause ?? err)} (HF_HUB_OFFLINE=1 uses the cache alone)`, { cause: err });
  }
}

function present(file: string, size: number): boolean {
  try {
    return fs.statSync(file).size === size;
  } catch {
    return false;
  }
}

function partialBytes(blob: string): number {
  try {
    return fs.statSync(`${blob}.incomplete`).size;
  } catch {
    return 0;
  }
}

/** The snapshot's entry: a relative link to the blob, as huggingface_hub makes it (a copy where links fail). */
function link(blob: string, entry: string): void {
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  fs.rmSync(entry, { force: true });
  try {
    fs.symlinkSync(path.relative(path.dirname(entry), blob), entry);
  } catch {
    fs.copyFileSync(blob, entry);
  }
}

/** Refuse before starting what cannot fit: `bytes` more must fit on the disk holding `dir`. */
export function checkFreeSpace(id: HubId, dir: string, bytes: number): void {
  let probe = dir;
  while (!fs.existsSync(probe)) probe = path.dirname(probe);
  const s = fs.statfsSync(probe);
  const free = s.bavail * s.bsize;
  if (bytes > free) throw new HubError(formatHubId(id), `needs ${gb(bytes)} GB more on ${probe}, which has ${gb(free)} GB free`);
}

const gb = (bytes: number) => (bytes / 1e9).toFixed(1);
