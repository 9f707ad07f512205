import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError } from '../errors.js';
import type { ExternalRef, WeightSink } from '../onnx/builder.js';
import type { GraphCore } from '../onnx/builder.js';

/** A temporary name beside `target`, so the final rename stays on one file system. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now().toString(36)}.tmp`);
}

/** Write a file so that readers see either the old file or the whole new one, never a half-written one. */
export function writeFileAtomic(target: string, data: Uint8Array | string): void {
  const tmp = tempPathFor(target);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, target);
  } catch (err) {
    // The clean-up fails the same way when the folder itself is the problem (ENOTDIR, EACCES): it
    // must not replace the error, and the error names the file asked for, not the temporary one.
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // nothing was written there
    }
    const e = err as NodeJS.ErrnoException;
    if (e?.path === tmp) e.path = target;
    throw err;
  }
}

/**
 * A browser holds each external-data file in one buffer and checks it in one sha256 pass (Web
 * Crypto has no streaming digest), so a file is held twice while checked: 512 MiB chunks keep that
 * well under what a tab can allocate and half of WebGPU's usual 1 GiB buffer cap (bench/RESULTS.md,
 * "The release's widths in the browser").
 */
export const DEFAULT_DATA_CHUNK_BYTES = 512 * 1024 * 1024;

/**
 * A weight sink that appends initializer bytes to external-data files as the graph is built, so
 * memory holds one tensor at a time and the .onnx file stays far below protobuf's 2 GB cap. The data
 * goes to `<model file>.data`, then `<model file>.data.1`, `.data.2`, ... whenever the next tensor
 * would take a file past `maxFileBytes`; a tensor is never split (ONNX places each in one file), so
 * one larger than the limit is refused. Data is written under temporary names; `commit()` renames
 * them into place.
 */
export class ExternalDataWriter implements WeightSink {
  private readonly dir: string;
  private readonly base: string;
  private readonly files: { location: string; tmp: string }[] = [];
  private fd: number | undefined;
  private offset = 0;
  /** Bytes in the data files before the open one. */
  private closed = 0;

  /**
   * @param modelPath the .onnx file the data belongs to; the data files are named after it, beside it
   * @param minBytes tensors smaller than this stay inline in the model
   * @param maxFileBytes the most bytes one data file holds (default: no limit, one file)
   */
  constructor(
    modelPath: string,
    private readonly minBytes = 1024,
    private readonly maxFileBytes = Number.POSITIVE_INFINITY,
  ) {
    this.dir = path.dirname(modelPath);
    this.base = `${path.basename(modelPath)}.data`;
    this.open();
  }

  /** The first data file's name (the only one unless the data passed `maxFileBytes`). */
  get location(): string {
    return this.files[0].location;
  }

  /** Every data file's name, in order. */
  get locations(): string[] {
    return this.files.map((f) => f.location);
  }

  place(name: string, bytes: Uint8Array): ExternalRef | undefined {
    if (bytes.byteLength < this.minBytes) return undefined;
    if (this.fd === undefined) throw new Error('ExternalDataWriter is already closed');
    if (bytes.byteLength > this.maxFileBytes) {
      throw new InvalidOptionError(`tensor ${name} has ${bytes.byteLength} bytes, more than the ${this.maxFileBytes} one external-data file may hold; raise the chunk limit`);
    }
    // 64-byte alignment lets runtimes map tensors without copying them to fix alignment.
    let start = Math.ceil(this.offset / 64) * 64;
    if (start > 0 && start + bytes.byteLength > this.maxFileBytes) {
      this.open();
      start = 0;
    }
    let written = 0;
    while (written < bytes.byteLength) {
      written += fs.writeSync(this.fd as number, bytes, written, bytes.byteLength - written, start + written);
    }
    this.offset = start + bytes.byteLength;
    return { location: this.files[this.files.length - 1].location, offset: start, length: bytes.byteLength };
  }

  /** Bytes written so far (alignment padding included). */
  get size(): number {
    return this.closed + this.offset;
  }

  commit(): void {
    this.close();
    for (const f of this.files) fs.renameSync(f.tmp, path.join(this.dir, f.location));
  }

  /** Close and delete the temporary data (after a failure). */
  abort(): void {
    this.close();
    for (const f of this.files) fs.rmSync(f.tmp, { force: true });
  }

  private open(): void {
    this.close();
    const location = this.files.length === 0 ? this.base : `${this.base}.${this.files.length}`;
    const tmp = tempPathFor(path.join(this.dir, location));
    this.files.push({ location, tmp });
    this.fd = fs.openSync(tmp, 'w');
    this.closed += this.offset;
    this.offset = 0;
  }

  private close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Serialize a graph to `modelPath`, committing its external data first so the model never points
 * at a missing file. Both land atomically.
 */
export function saveModel(graph: GraphCore, modelPath: string, weights?: ExternalDataWriter): void {
  let bytes: Uint8Array;
  try {
    bytes = graph.toBytes();
  } catch (err) {
    weights?.abort();
    throw err;
  }
  weights?.commit();
  writeFileAtomic(modelPath, bytes);
}

/**
 * `fs.mkdirSync(dir, { recursive: true })` without its endless loop: Node's recursive mkdir retries
 * forever where mkdir says ENOENT under a folder that exists (/proc, /sys). Missing parents are made
 * one at a time, and any failure is thrown as it is. Returns the first folder made (undefined if
 * `dir` existed), as mkdirSync does.
 */
export function makeDirs(dir: string): string | undefined {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (fs.existsSync(d)) break;
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      fs.mkdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(d).isDirectory()) throw err;
    }
  }
  return missing[0];
}
