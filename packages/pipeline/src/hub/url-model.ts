import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, HubError, type ProgressCallback } from '@llava-mini/core';
import { writeFileAtomic } from '@llava-mini/core/node';
import { type FileEntry, type Manifest, MANIFEST_FILE, manifestFiles, parseManifest } from '../manifest.js';
import { recordVerified } from '../model-files.js';
import { downloadFile } from './download.js';
import { hubSettings, type HubSettings } from './settings.js';

export interface UrlModelOptions {
  onProgress?: ProgressCallback;
  settings?: HubSettings;
}

export const isModelUrl = (spec: string): boolean => /^https?:\/\//i.test(spec);

/** Where a URL's folder is kept: LLAVA_MINI_CACHE/urls/<sha256 of the URL, 16 hex digits>. */
export function urlModelPath(settings: HubSettings, url: string): string {
  return path.join(settings.convertedDir, 'urls', createHash('sha256').update(folderUrl(url)).digest('hex').slice(0, 16));
}

const folderUrl = (url: string) => (url.endsWith('/') ? url : `${url}/`);

/**
 * A converted folder served over HTTP (`llava-mini convert`'s output on any web server): its
 * manifest fetched (from the cache when offline, or when the server cannot be reached and a copy is
 * there), the files it lists downloaded with the hub's code (resumed, locked, checked against the
 * manifest's size and sha256) into the cache, and the folder returned. Files whose manifest entry
 * is unchanged are not fetched again; the manifest is written last, so a folder without one is
 * never taken for complete.
 */
export async function fetchModelUrl(url: string, options: UrlModelOptions = {}): Promise<string> {
  const settings = options.settings ?? hubSettings();
  const base = folderUrl(url);
  const dir = urlModelPath(settings, base);
  const stored = path.join(dir, MANIFEST_FILE);
  const text = await manifestText(base, stored, settings.offline);
  const manifest = parseManifest(text, `${base}${MANIFEST_FILE}`);
  const before = fs.existsSync(stored) ? entries(parseManifest(fs.readFileSync(stored, 'utf8'), stored), base) : new Map<string, FileEntry>();
  const wanted = [...entries(manifest, base).values()];
  const missing = wanted.filter((f) => before.get(f.name)?.sha256 !== f.sha256 || !sameSize(path.join(dir, f.name), f.bytes));
  fs.mkdirSync(dir, { recursive: true });
  if (missing.length) fs.rmSync(stored, { force: true });
  const total = missing.reduce((n, f) => n + f.bytes, 0);
  let done = 0;
  for (const f of missing) {
    fs.rmSync(path.join(dir, f.name), { force: true });
    await downloadFile(new URL(f.name, base).href, path.join(dir, f.name), { path: f.name, size: f.bytes, oid: '', sha256: f.sha256 }, {
      repo: base,
      hubOrigin: new URL(base).origin,
      onBytes: (n) => options.onProgress?.({ task: 'download', item: f.name, done: (done += n), total, unit: 'bytes' }),
    });
  }
  // The tokenizer reads the generation config from the folder, as a conversion leaves it.
  if (manifest.generationConfig) writeFileAtomic(path.join(dir, 'generation_config.json'), JSON.stringify(manifest.generationConfig, null, 2));
  // Every file was just checked against the manifest's sha256: record it, so loading does not hash them again.
  if (missing.length) recordVerified(dir, wanted);
  if (missing.length || !fs.existsSync(stored)) writeFileAtomic(stored, text);
  return dir;
}

async function manifestText(base: string, stored: string, offline: boolean): Promise<string> {
  const cached = () => {
    if (!fs.existsSync(stored)) return undefined;
    return fs.readFileSync(stored, 'utf8');
  };
  if (offline) {
    const text = cached();
    if (text === undefined) throw new HubError(base, 'is not in the cache, and HF_HUB_OFFLINE=1 forbids downloading it');
    return text;
  }
  let res: Response;
  try {
    res = await fetch(`${base}${MANIFEST_FILE}`);
  } catch (err) {
    const text = cached();
    if (text !== undefined) return text;
    throw new HubError(base, `cannot fetch ${MANIFEST_FILE}: ${errorMessage((err as Error).cause ?? err)}`, { cause: err });
  }
  if (!res.ok) throw new HubError(base, `${MANIFEST_FILE}: the server answered ${res.status}`, { status: res.status });
  return res.text();
}

/** Every file a manifest lists, by name; a name that is not a plain file name is refused (it would write outside the folder). */
function entries(m: Manifest, where: string): Map<string, FileEntry> {
  const files = manifestFiles(m);
  const bad = files.find((f) => path.basename(f.name) !== f.name || f.name.startsWith('.'));
  if (bad) throw new HubError(where, `${MANIFEST_FILE} lists ${JSON.stringify(bad.name)}, not a plain file name`);
  return new Map(files.map((f) => [f.name, f]));
}

function sameSize(file: string, bytes: number): boolean {
  try {
    return fs.statSync(file).size === bytes;
  } catch {
    return false;
  }
}
