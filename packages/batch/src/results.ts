import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidOptionError, errorMessage } from '@llava-mini/core';
import { isAlive } from '@llava-mini/core/node';
import type { ResultLine } from './answer.js';
import { jobKey } from './jobs.js';

export interface OpenResultsOptions {
  /** Drop the error lines already in the file so those jobs run again (the file is rewritten atomically). */
  retryErrors?: boolean;
}

/** What opening an existing results file found. */
export interface ResultsRecovery {
  /** Results already in the file, by job key. */
  done: number;
  /** A torn last line (a crash mid-write) was cut off: its byte count, else 0. */
  tornBytes: number;
  /** Error lines removed for `retryErrors`. */
  droppedErrors: number;
}

function isResultLine(v: unknown): v is ResultLine {
  if (v === null || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return (typeof r.id === 'string' || typeof r.id === 'number') && ('answer' in r || 'answers' in r || 'error' in r);
}

/**
 * A JSONL results file that only grows by whole lines, each on disk (fsync) before `append`
 * resolves. Opening it repairs what a crash can leave: a torn last line is cut off (or, when it is
 * a complete result that lost only its newline, finished). A lock file beside it keeps a second
 * process from appending to it at the same time.
 */
export class ResultLog {
  private readonly ids = new Map<string, 'ok' | 'error'>();
  private chain: Promise<void> = Promise.resolve();
  private pending: string[] = [];
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly handle: fs.promises.FileHandle,
    private readonly lock: string,
    readonly recovery: ResultsRecovery,
  ) {}

  static async open(file: string, options: OpenResultsOptions = {}): Promise<ResultLog> {
    file = path.resolve(file);
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    const lock = await takeLock(`${file}.lock`);
    try {
      const lines = await recover(file);
      let droppedErrors = 0;
      if (options.retryErrors && lines.results.some((r) => 'error' in r.value)) {
        const kept = lines.results.filter((r) => !('error' in r.value));
        droppedErrors = lines.results.length - kept.length;
        await writeAtomically(file, kept.map((r) => r.text).join(''));
        lines.results = kept;
      }
      const handle = await fs.promises.open(file, 'a');
      // A new file's directory entry must be durable too, or a crash can lose the whole file.
      await syncDir(path.dirname(file));
      const log = new ResultLog(file, handle, lock, { done: 0, tornBytes: lines.tornBytes, droppedErrors });
      for (const r of lines.results) log.ids.set(jobKey(r.value.id), 'error' in r.value ? 'error' : 'ok');
      log.recovery.done = log.ids.size;
      return log;
    } catch (e) {
      await fs.promises.rm(lock, { force: true });
      throw e;
    }
  }

  has(id: string | number): boolean {
    return this.ids.has(jobKey(id));
  }

  get size(): number {
    return this.ids.size;
  }

  /**
   * Append results; resolves once they are on disk. Lines that arrive while a write is in flight
   * share the next write and fsync (group commit). A result for an id already in the file is
   * dropped: the file holds each id once.
   */
  append(results: readonly ResultLine[]): Promise<void> {
    if (this.closed) throw new Error('the results file is closed');
    for (const r of results) {
      const key = jobKey(r.id);
      if (this.ids.has(key)) continue;
      this.ids.set(key, 'error' in r ? 'error' : 'ok');
      this.pending.push(`${JSON.stringify(r)}\n`);
    }
    this.chain = this.chain.then(async () => {
      if (!this.pending.length) return;
      const text = this.pending.join('');
      this.pending = [];
      await this.handle.appendFile(text);
      await this.handle.datasync();
    });
    return this.chain;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.chain;
    } finally {
      await this.handle.close();
      await fs.promises.rm(this.lock, { force: true });
    }
  }
}

interface ReadLine {
  value: ResultLine;
  text: string;
}

/** Read the file's results, cutting off (on disk) a torn last line. */
async function recover(file: string): Promise<{ results: ReadLine[]; tornBytes: number }> {
  let data: Buffer;
  try {
    data = await fs.promises.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { results: [], tornBytes: 0 };
    throw new InvalidOptionError(`cannot read the results file ${file}: ${errorMessage(e)}`, { cause: e });
  }
  const results: ReadLine[] = [];
  let start = 0;
  let lineNo = 0;
  while (start < data.length) {
    lineNo++;
    const nl = data.indexOf(0x0a, start);
    const end = nl === -1 ? data.length : nl;
    const text = data.subarray(start, end).toString('utf8');
    let value: unknown;
    let ok = text.trim() === '';
    if (!ok) {
      try {
        value = JSON.parse(text);
        ok = isResultLine(value);
      } catch {
        ok = false;
      }
    }
    if (nl === -1) {
      // The last bytes have no newline: a crash stopped a write. A complete result only lost its
      // newline and is kept; anything else is cut off so the next append starts on a clean line.
      if (ok && value !== undefined) {
        await fs.promises.appendFile(file, '\n');
        results.push({ value: value as ResultLine, text: `${text}\n` });
        return { results, tornBytes: 0 };
      }
      await truncate(file, start);
      return { results, tornBytes: data.length - start };
    }
    if (!ok) throw new InvalidOptionError(`${file}:${lineNo}: not a result line; the file was changed by something else (fix or remove that line)`);
    if (value !== undefined) results.push({ value: value as ResultLine, text: `${text}\n` });
    start = nl + 1;
  }
  return { results, tornBytes: 0 };
}

async function truncate(file: string, length: number): Promise<void> {
  const h = await fs.promises.open(file, 'r+');
  try {
    await h.truncate(length);
    await h.sync();
  } finally {
    await h.close();
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const h = await fs.promises.open(tmp, 'w');
  try {
    await h.writeFile(text);
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.promises.rename(tmp, file);
  await syncDir(path.dirname(file));
}

async function syncDir(dir: string): Promise<void> {
  const h = await fs.promises.open(dir, 'r');
  try {
    await h.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    await h.close();
  }
}

/** Take `lock` for this process, replacing one left by a process on this host that no longer runs. */
async function takeLock(lock: string): Promise<string> {
  const me = `${os.hostname()} ${process.pid}`;
  for (let tries = 0; tries < 2; tries++) {
    try {
      await fs.promises.writeFile(lock, me, { flag: 'wx' });
      return lock;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new InvalidOptionError(`cannot create the lock file ${lock}: ${errorMessage(e)}`, { cause: e });
    }
    const owner = (await fs.promises.readFile(lock, 'utf8').catch(() => '')).trim();
    const [host, pid] = owner.split(' ');
    if (host === os.hostname() && !isAlive(Number(pid))) {
      await fs.promises.rm(lock, { force: true });
      continue;
    }
    throw new InvalidOptionError(`${lock.slice(0, -'.lock'.length)} is being written by ${owner ? `process ${pid} on ${host}` : 'another process'} (remove ${lock} if that is not so)`);
  }
  throw new InvalidOptionError(`cannot take the lock ${lock}`);
}
