import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileError, fileSystemError, InvalidOptionError, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { DEFAULT_DATA_CHUNK_BYTES, ExternalDataWriter, isAlive, makeDirs, saveModel, writeFileAtomic } from '@llava-mini/core/node';
import { inConfigFile, openHfCheckpoint, withProgress } from './checkpoint.js';
import { GRAPHS, type GraphName } from './formats.js';
import { type FileEntry, GRAPH_FILES, type Manifest, MANIFEST_FILE, manifestOf } from './manifest.js';
import { type ConversionSource, MODEL_CARD_FILE, modelCard, readLicense } from './model-card.js';
import { recordVerified, sha256File } from './model-files.js';
import { type ConversionOptions, planConversion } from './plan.js';
import { buildGraph } from './stages.js';

export interface ConvertOptions extends ConversionOptions {
  /** A standalone CLIP vision checkpoint, for checkpoints without their own copy of the tower. */
  clipDir?: string;
  /** Replace an existing output folder (only once the new one is complete). */
  force?: boolean;
  /**
   * The most bytes one external-data file holds (default 512 MiB): a graph's weights past it go to
   * `<graph>.onnx.data.1`, `.data.2`, ..., each listed in the manifest, so a browser never holds one
   * file larger than this. No tensor may be larger.
   */
  maxChunkBytes?: number;
  /** What the model card (README.md) names as the weights' origin; default: the checkpoint folder's name. */
  source?: ConversionSource;
  onProgress?: ProgressCallback;
}

function fileEntry(dir: string, name: string): FileEntry {
  const file = path.join(dir, name);
  return { name, bytes: fs.statSync(file).size, sha256: sha256File(file) };
}

/**
 * Convert a Hugging Face LLaVA-Mini checkpoint folder into ONNX graphs (weights as external data),
 * the tokenizer files and a manifest. Tensors are read one at a time and written straight to the
 * data files, so memory stays near one tensor whatever the checkpoint size. Everything is written to
 * a temporary folder beside `outDir` that is renamed into place at the end: an interrupted or failed
 * conversion leaves no half-written model.
 */
export async function convertCheckpoint(checkpointDir: string, outDir: string, options: ConvertOptions = {}): Promise<Manifest> {
  const out = path.resolve(outDir);
  const chunk = options.maxChunkBytes ?? DEFAULT_DATA_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunk) || chunk < 64) throw new InvalidOptionError(`maxChunkBytes must be an integer of at least 64 bytes, got ${JSON.stringify(options.maxChunkBytes)}`);
  checkOutput(out, options.force === true);
  removeStalePartials(out);
  const hf = openHfCheckpoint(checkpointDir, options.clipDir);
  const tmp = partialDir(out);
  let created: string | undefined;
  let free = Number.NaN;
  try {
    const plan = planConversion(hf.config, hf.weights, options);
    fs.rmSync(tmp, { recursive: true, force: true });
    // The first folder mkdir made: missing parents of --out are removed again if the conversion fails.
    created = makeDirs(tmp);
    free = freeBytes(tmp);
    const src = withProgress(hf.weights, 'convert', hf.weights.names.length, options.onProgress);
    const stages = {} as Record<GraphName, FileEntry[]>;
    for (const name of GRAPHS) {
      const modelPath = path.join(tmp, GRAPH_FILES[name]);
      const weights = new ExternalDataWriter(modelPath, undefined, chunk);
      try {
        saveModel(buildGraph(name, plan, src, { blockSize: options.blockSize, weights }), modelPath, weights);
      } catch (err) {
        weights.abort();
        throw err;
      }
      const files = [GRAPH_FILES[name], ...weights.locations].filter((f) => fs.existsSync(path.join(tmp, f)));
      stages[name] = files.map((f) => fileEntry(tmp, f));
      // Let progress listeners and the event loop breathe between stages.
      await new Promise((r) => setImmediate(r));
    }
    for (const f of [...hf.tokenizerFiles, 'config.json', ...(hf.generationConfig ? ['generation_config.json'] : [])]) {
      fs.copyFileSync(path.join(hf.dir, f), path.join(tmp, f));
    }
    const manifest = manifestOf(plan, { stages, tokenizer: hf.tokenizerFiles.map((f) => fileEntry(tmp, f)) }, hf.generationConfig);
    recordVerified(tmp, [...Object.values(stages).flat(), ...manifest.tokenizer]);
    const source = options.source ?? { name: path.basename(path.resolve(checkpointDir)) };
    fs.writeFileSync(path.join(tmp, MODEL_CARD_FILE), modelCard(manifest, source, readLicense(checkpointDir)));
    writeFileAtomic(path.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    replaceDir(tmp, out);
    return manifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const written = code === 'ENOSPC' || code === 'EDQUOT' ? folderBytes(tmp) : 0;
    // Cleaning up must never hide the error that made it necessary.
    removeQuietly(created ?? tmp);
    // A write to a full disk names no path (it goes through an open file): say where, and how much.
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new FileError(out, `no space left on the device: the conversion stopped after ${gb(written)} GB of the converted model, with ${gb(free)} GB free when it started; it needs more (removed, nothing half-written left)`, { cause: err });
    }
    throw fileSystemError(err) ?? inConfigFile(err, path.join(hf.dir, 'config.json'));
  } finally {
    hf.weights.close();
  }
}

/** Where a conversion into `out` writes before the final rename (the pid keeps concurrent runs apart). */
export function partialDir(out: string, pid = process.pid): string {
  return `${path.resolve(out)}.partial-${pid}`;
}

const gb = (bytes: number) => (bytes / 1e9).toFixed(2);

/** Bytes free on the disk holding `dir`. */
function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Bytes of the files in `dir` (one level: the converter writes no subfolders). */
function folderBytes(dir: string): number {
  try {
    return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

function removeQuietly(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // Nothing more can be done; the caller reports the original error.
  }
}

function statOf(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch (err) {
    // ENOTDIR: a file sits above it in the path, which checkOutput reports by that file's name.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw fileSystemError(err) ?? err;
  }
}

/** Refuse an output that cannot or must not be written before any work (not after converting gigabytes). */
function checkOutput(out: string, force: boolean): void {
  const st = statOf(out);
  if (st && !st.isDirectory()) throw new FileError(out, 'is a file, not a folder; choose another output folder');
  if (st && !force) throw new InvalidOptionError(`${out} already exists; pass force (--force) to replace it`);
  if (st && !fs.existsSync(path.join(out, MANIFEST_FILE)) && fs.readdirSync(out).length > 0) {
    throw new ModelFilesError(out, 'exists and is not a converted model folder; refusing to replace it');
  }
  for (let dir = path.dirname(out); ; dir = path.dirname(dir)) {
    const parent = statOf(dir);
    if (parent && !parent.isDirectory()) throw new FileError(dir, `is a file, so ${out} cannot be created under it`);
    if (parent || path.dirname(dir) === dir) break;
  }
}

/**
 * Remove what conversions into `out` that were killed (SIGKILL, a crash, a power cut) left behind:
 * `<out>.partial-<pid>` and `<out>.old-<pid>` folders whose process is gone.
 */
export function removeStalePartials(out: string): void {
  const dir = path.dirname(out);
  const prefix = path.basename(out);
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    const m = /^\.(partial|old)-(\d+)$/.exec(name.slice(prefix.length));
    if (!name.startsWith(prefix) || !m || isAlive(Number(m[2]))) continue;
    removeQuietly(path.join(dir, name));
  }
}

/** Move `from` to `to`; an existing `to` is only removed once `from` is in place. */
function replaceDir(from: string, to: string): void {
  if (!fs.existsSync(to)) {
    fs.renameSync(from, to);
    return;
  }
  const old = `${to}.old-${process.pid}`;
  fs.renameSync(to, old);
  fs.renameSync(from, to);
  fs.rmSync(old, { recursive: true, force: true });
}
