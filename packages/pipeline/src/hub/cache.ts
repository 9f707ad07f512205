import * as fs from 'node:fs';
import * as path from 'node:path';
import { hubSettings, type HubSettings } from './settings.js';
import { repoFolderName } from './snapshot.js';

/** One thing the caches hold: a repository's downloads, or one conversion of it. */
export interface CacheEntry {
  kind: 'download' | 'converted';
  repo: string;
  /** The commit; for a download, every commit it holds. */
  commits: string[];
  /** For a conversion: `dtype-target`, e.g. q4-cpu. */
  variant?: string;
  bytes: number;
  path: string;
}

/** What the hub cache (model repositories) and the converted cache hold. */
export async function listCache(settings: HubSettings = hubSettings()): Promise<CacheEntry[]> {
  const entries: CacheEntry[] = [];
  if (fs.existsSync(settings.cacheDir)) {
    const { scanCacheDir } = await import('@huggingface/hub');
    for (const r of (await scanCacheDir(settings.cacheDir)).repos) {
      if (r.id.type !== 'model') continue;
      entries.push({ kind: 'download', repo: r.id.name, commits: r.revisions.map((v) => v.commitOid), bytes: r.size, path: r.path });
    }
  }
  for (const { repo, commit, variant, dir } of conversions(settings)) {
    entries.push({ kind: 'converted', repo, commits: [commit], variant, bytes: folderBytes(dir), path: dir });
  }
  return entries.sort((a, b) => a.repo.localeCompare(b.repo) || a.kind.localeCompare(b.kind));
}

/** Remove a repository's downloads and conversions; returns the folders removed. */
export function removeFromCache(repo: string, settings: HubSettings = hubSettings()): string[] {
  const folders = [path.join(settings.cacheDir, repoFolderName(repo)), path.join(settings.convertedDir, repo.replace('/', '--'))];
  const removed = folders.filter((f) => fs.existsSync(f));
  for (const f of removed) fs.rmSync(f, { recursive: true, force: true });
  return removed;
}

function* conversions(settings: HubSettings): Generator<{ repo: string; commit: string; variant: string; dir: string }> {
  for (const repoDir of subfolders(settings.convertedDir)) {
    for (const commit of subfolders(path.join(settings.convertedDir, repoDir))) {
      for (const variant of subfolders(path.join(settings.convertedDir, repoDir, commit))) {
        yield { repo: repoDir.replace('--', '/'), commit, variant, dir: path.join(settings.convertedDir, repoDir, commit, variant) };
      }
    }
  }
}

function subfolders(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  // Not hidden folders, nor a conversion still being written (convertCheckpoint's `.partial-<pid>`).
  return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.') && !e.name.includes('.partial-')).map((e) => e.name);
}

function folderBytes(dir: string): number {
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    bytes += e.isDirectory() ? folderBytes(p) : e.isFile() ? fs.statSync(p).size : 0;
  }
  return bytes;
}
