import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlive } from '@llava-mini/core/node';

const POLL_MS = 200;

/**
 * Run `fn` holding `file` (created exclusively, holding this process's id), so that two processes,
 * or two threads of one (a server's workers), never write the same download or conversion at
 * once. A lock held by a live process is waited for; one whose process has died is taken over.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  while (!tryLock(file)) await new Promise((r) => setTimeout(r, POLL_MS));
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function tryLock(file: string): boolean {
  try {
    fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let pid: number;
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    pid = text === '' ? Number.NaN : Number(text);
  } catch {
    return false; // released between the two calls: try again
  }
  // A lock just created may not hold its pid yet (empty): wait for it like a live one.
  if (Number.isNaN(pid) || isAlive(pid)) return false;
  fs.rmSync(file, { force: true });
  return false;
}
