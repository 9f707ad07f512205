import * as fs from 'node:fs';
import * as path from 'node:path';
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
 * A weight sink that appends initializer bytes to one external-data file as the graph is built, so
 * memory holds one tensor at a time and the .onnx file stays far below protobuf's 2 GB cap. Data is
 * written under a temporary name; `commit()` renames it into place.
 */
export class ExternalDataWriter implements WeightSink {
  readonly location: string;
  private readonly target: string;
  private readonly tmp: string;
  private fd: number | undefined;
  private offset = 0;

  /**
   * @param modelPath the .onnx file the data belongs to; the data file is `<model file>.data` beside it
   * @param minBytes tensors smaller than this stay inline in the model
   */
  constructor(
    modelPath: string,
    private readonly minBytes = 1024,
  ) {
    this.location = `${path.basename(modelPath)}.data`;
    this.target = path.join(path.dirname(modelPath), this.location);
    this.tmp = tempPathFor(this.target);
    this.fd = fs.openSync(this.tmp, 'w');
  }

  place(_name: string, bytes: Uint8Array): ExternalRef | undefined {
    if (bytes.byteLength < this.minBytes) return undefined;
    if (this.fd === undefined) throw new Error('ExternalDataWriter is already closed');
    // 64-byte alignment lets runtimes map tensors without copying them to fix alignment.
    const start = Math.ceil(this.offset / 64) * 64;
    let written = 0;
    while (written < bytes.byteLength) {
      written += fs.writeSync(this.fd, bytes, written, bytes.byteLength - written, start + written);
    }
    this.offset = start + bytes.byteLength;
    return { location: this.location, offset: start, length: bytes.byteLength };
  }

  /** Bytes written so far. */
  get size(): number {
    return this.offset;
  }

  commit(): void {
    this.close();
    fs.renameSync(this.tmp, this.target);
  }

  /** Close and delete the temporary data (after a failure). */
  abort(): void {
    this.close();
    fs.rmSync(this.tmp, { force: true });
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
