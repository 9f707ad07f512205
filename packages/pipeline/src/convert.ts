import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError, ModelFilesError, type ProgressCallback } from '@llava-mini/core';
import { ExternalDataWriter, saveModel, writeFileAtomic } from '@llava-mini/core/node';
import { openHfCheckpoint, withProgress } from './checkpoint.js';
import { type FileEntry, type Manifest, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION, type StageEntry } from './manifest.js';
import { GRAPHS, type GraphName } from './parts.js';
import { buildGraph, type ConversionOptions, planConversion } from './stages.js';

export interface ConvertOptions extends ConversionOptions {
  /** A standalone CLIP vision checkpoint, for checkpoints without their own copy of the tower. */
  clipDir?: string;
  /** Replace an existing output folder (only once the new one is complete). */
  force?: boolean;
  onProgress?: ProgressCallback;
}

const GRAPH_FILES: Record<GraphName, string> = {
  encoder: 'encoder.onnx',
  compressor: 'compressor.onnx',
  prefusion: 'prefusion.onnx',
  llm: 'llm.onnx',
  embeddings: 'llm_embeddings.onnx',
};

/** sha256 of a file, read in chunks (weight files can be many GB). */
function sha256(file: string): string {
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

function fileEntry(dir: string, name: string): FileEntry {
  const file = path.join(dir, name);
  return { name, bytes: fs.statSync(file).size, sha256: sha256(file) };
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
  if (fs.existsSync(out) && !options.force) throw new InvalidOptionError(`${out} already exists; pass force (--force) to replace it`);
  const hf = openHfCheckpoint(checkpointDir, options.clipDir);
  const tmp = `${out}.partial-${process.pid}`;
  try {
    const plan = planConversion(hf.config, hf.weights, options);
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    const src = withProgress(hf.weights, 'convert', hf.weights.names.length, options.onProgress);
    const stages = {} as Record<GraphName, StageEntry>;
    for (const name of GRAPHS) {
      const modelPath = path.join(tmp, GRAPH_FILES[name]);
      const weights = new ExternalDataWriter(modelPath);
      try {
        saveModel(buildGraph(name, hf.config, src, plan, weights), modelPath, weights);
      } catch (err) {
        weights.abort();
        throw err;
      }
      const files = [GRAPH_FILES[name], weights.location].filter((f) => fs.existsSync(path.join(tmp, f)));
      const dtype = name === 'embeddings' ? plan.dtypes.llm : plan.dtypes[name];
      stages[name] = { model: GRAPH_FILES[name], dtype, format: plan.formats[name], files: files.map((f) => fileEntry(tmp, f)) };
      // Let progress listeners and the event loop breathe between stages.
      await new Promise((r) => setImmediate(r));
    }
    for (const f of [...hf.tokenizerFiles, 'config.json', ...(hf.generationConfig ? ['generation_config.json'] : [])]) {
      fs.copyFileSync(path.join(hf.dir, f), path.join(tmp, f));
    }
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      created: new Date().toISOString(),
      target: plan.target,
      config: hf.config,
      generationConfig: hf.generationConfig,
      contextLength: plan.contextLength,
      prefusionPositions: plan.prefusionPositions,
      keyGrid: plan.keyGrid,
      compressor: plan.compressor,
      stages,
      tokenizer: hf.tokenizerFiles.map((f) => fileEntry(tmp, f)),
    };
    writeFileAtomic(path.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    replaceDir(tmp, out);
    return manifest;
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    hf.weights.close();
  }
}

/** Move `from` to `to`; an existing `to` is only removed once `from` is in place. */
function replaceDir(from: string, to: string): void {
  if (!fs.existsSync(to)) {
    fs.renameSync(from, to);
    return;
  }
  if (!fs.existsSync(path.join(to, MANIFEST_FILE)) && fs.readdirSync(to).length > 0) {
    throw new ModelFilesError(to, 'exists and is not a converted model folder; refusing to replace it');
  }
  const old = `${to}.old-${process.pid}`;
  fs.renameSync(to, old);
  fs.renameSync(from, to);
  fs.rmSync(old, { recursive: true, force: true });
}
