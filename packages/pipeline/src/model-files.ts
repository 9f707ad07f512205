// A converted model folder on disk: its manifest read and checked, and its files verified against
// the manifest's sha256 once, then trusted while their size and mtime stay the same.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, fileSystemError, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { writeFileAtomic } from '@llava-mini/core/node';
import { type FileEntry, type Manifest, MANIFEST_FILE, manifestFiles, parseManifest } from './manifest.js';

/** Beside manifest.json: which files were hashed, at what size and mtime. Deleting it re-verifies. */
export const VERIFIED_FILE = '.verified.json';

interface VerifiedRecord {
  [name: string]: { bytes: number; mtimeMs: number; sha256: string };
}

/** sha256 of a file, read in chunks (weight files can be many GB). */
export function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 22);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Read and check `<dir>/manifest.json`; any file-system failure names the file. */
export function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const fsErr = fileSystemError(err);
    throw new ModelFilesError(file, `cannot be read: ${fsErr ? fsErr.message.slice(fsErr.path.length + 2) : errorMessage(err)}`, { cause: err });
  }
  return parseManifest(text, file);
}

function readRecord(file: string): VerifiedRecord {
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    return r !== null && typeof r === 'object' ? r : {};
  } catch {
    return {};
  }
}

/**
 * Check every file the manifest lists: present, of the recorded size, and (once per file version)
 * of the recorded sha256, so a `.data` file corrupted at the same size is caught. Hashing gigabytes
 * on every start would dominate it, so a file whose size and mtime match the last verification is
 * trusted; the record is written where the folder allows (a read-only folder is verified each time).
 */
export function verifyModelFiles(dir: string, manifest: Manifest, onProgress?: ProgressCallback): void {
  const entries = manifestFiles(manifest);
  const recordFile = path.join(dir, VERIFIED_FILE);
  const before = readRecord(recordFile);
  const after: VerifiedRecord = {};
  const stats = entries.map((f) => {
    const file = path.join(dir, f.name);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new ModelFilesError(file, missing ? 'is listed in the manifest but missing' : `cannot be read: ${errorMessage(err)}`, { cause: err });
    }
    if (!st.isFile()) throw new ModelFilesError(file, 'is listed in the manifest but is not a file');
    if (st.size !== f.bytes) throw new ModelFilesError(file, `is ${st.size} bytes, the manifest says ${f.bytes}: the folder is damaged or incomplete; convert the checkpoint again`);
    return st;
  });
  const toHash = entries.filter((f, i) => {
    const r = before[f.name];
    return !(r && r.sha256 === f.sha256 && r.bytes === stats[i].size && r.mtimeMs === stats[i].mtimeMs);
  });
  const total = toHash.reduce((n, f) => n + f.bytes, 0);
  let done = 0;
  entries.forEach((f, i) => {
    if (toHash.includes(f)) {
      const file = path.join(dir, f.name);
      let digest: string;
      try {
        digest = sha256File(file);
      } catch (err) {
        throw new ModelFilesError(file, `cannot be read: ${errorMessage(err)}`, { cause: err });
      }
      if (digest !== f.sha256) throw new ModelFilesError(file, 'does not match its sha256 in the manifest (corrupted or changed since conversion): convert the checkpoint again');
      done += f.bytes;
      onProgress?.({ task: 'verify', item: f.name, done, total, unit: 'bytes' });
    }
    after[f.name] = { bytes: stats[i].size, mtimeMs: stats[i].mtimeMs, sha256: f.sha256 };
  });
  if (toHash.length > 0) writeRecord(recordFile, after);
}

function writeRecord(file: string, record: VerifiedRecord): void {
  try {
    writeFileAtomic(file, `${JSON.stringify(record, null, 1)}\n`);
  } catch {
    // A read-only folder: nothing is recorded and the next start verifies again.
  }
}

/** Record files the converter has just written and hashed, so the first load does not hash them again. */
export function recordVerified(dir: string, entries: readonly FileEntry[]): void {
  const record: VerifiedRecord = {};
  for (const f of entries) record[f.name] = { bytes: f.bytes, mtimeMs: fs.statSync(path.join(dir, f.name)).mtimeMs, sha256: f.sha256 };
  writeRecord(path.join(dir, VERIFIED_FILE), record);
}
