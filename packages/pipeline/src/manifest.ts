import { ModelFilesError, type WeightFormat } from '@llava-mini/core';
import type { CompressorConfig } from '@llava-mini/compressor';
import { DTYPE_NAMES, type DtypeName, type StageName, type Target, TARGETS } from './formats.js';
import { GRAPHS, type GraphName } from './parts.js';

export const MANIFEST_FILE = 'manifest.json';
/** The file each graph is written to in a converted folder (its weights in `<file>.data` beside it). */
export const GRAPH_FILES: Readonly<Record<GraphName, string>> = {
  encoder: 'encoder.onnx',
  compressor: 'compressor.onnx',
  prefusion: 'prefusion.onnx',
  llm: 'llm.onnx',
  embeddings: 'llm_embeddings.onnx',
};
export const MANIFEST_FORMAT = 'llava-mini-onnx';
// 2: pre-fusion is one causal GroupQueryAttention graph over a cacheable picture prefix (no attention_bias input).
// 3: the LLM decoder looks up its own token ids (input_ids after inputs_embeds), and float32 decoders
//    read the KV cache as an input and return only the new rows (position_ids, past_bias, causal_bias).
export const MANIFEST_VERSION = 3;

export interface FileEntry {
  name: string;
  bytes: number;
  sha256: string;
}

export interface StageEntry {
  /** The .onnx file; its external data files are listed in `files` too. */
  model: string;
  dtype: DtypeName;
  format: WeightFormat;
  files: FileEntry[];
}

/** What a converted model folder holds; written last, so a folder with a manifest is complete. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  created: string;
  target: Target;
  /** The checkpoint's config.json (the stages read their settings from it) and generation config. */
  config: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  /** Context window the LLM graph and KV cache were sized for, and the pre-fusion RoPE table rows. */
  contextLength: number;
  prefusionPositions: number;
  /** s: CLIP grid side the compressor's key table was built for ((image/patch) * resolution_ratio). */
  keyGrid: number;
  /** The compressor's settings, read from the checkpoint's tensors at conversion (C comes from a shape). */
  compressor: CompressorConfig;
  stages: Record<StageName, StageEntry> & { embeddings: StageEntry };
  tokenizer: FileEntry[];
}

export function parseManifest(text: string, where: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw new ModelFilesError(where, `is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (m?.format !== MANIFEST_FORMAT) throw new ModelFilesError(where, `is not a llava-mini model manifest (format ${JSON.stringify(m?.format)})`);
  if (m.version !== MANIFEST_VERSION) {
    throw new ModelFilesError(where, `has format version ${m.version}; this runtime reads version ${MANIFEST_VERSION}: convert the checkpoint again`);
  }
  checkShape(m, where);
  return m;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const positiveInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;
/** A file of the folder itself: no separators, no `..`, so a manifest cannot point outside its folder. */
const plainName = (v: unknown) => typeof v === 'string' && v !== '' && v !== '.' && v !== '..' && !/[\\/]/.test(v);

function checkFiles(files: unknown, key: string, where: string): void {
  if (!Array.isArray(files)) throw new ModelFilesError(where, `"${key}" must be a list of files`);
  for (const [i, f] of files.entries()) {
    if (!isObject(f) || !plainName(f.name) || !Number.isSafeInteger(f.bytes) || (f.bytes as number) < 0 || typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) {
      throw new ModelFilesError(where, `"${key}[${i}]" must be { name (a file in the folder), bytes, sha256 }, got ${JSON.stringify(f)}`);
    }
  }
}

/** Every field the loaders read, checked up front: a damaged manifest is a typed error, not a TypeError later. */
function checkShape(m: Manifest, where: string): void {
  const again = ': convert the checkpoint again';
  if (!TARGETS.includes(m.target)) throw new ModelFilesError(where, `has target ${JSON.stringify(m.target)}, not one of ${TARGETS.join(', ')}${again}`);
  if (!isObject(m.config)) throw new ModelFilesError(where, `has no "config" object${again}`);
  for (const key of ['contextLength', 'prefusionPositions', 'keyGrid'] as const) {
    if (!positiveInt(m[key])) throw new ModelFilesError(where, `"${key}" must be a positive integer, got ${JSON.stringify(m[key])}${again}`);
  }
  if (!isObject(m.compressor)) throw new ModelFilesError(where, `has no "compressor" settings${again}`);
  if (!isObject(m.stages)) throw new ModelFilesError(where, `has no "stages" (the model's graphs)${again}`);
  for (const name of GRAPHS) {
    const stage = (m.stages as Record<string, unknown>)[name];
    if (!isObject(stage)) throw new ModelFilesError(where, `has no "stages.${name}"${again}`);
    if (!plainName(stage.model)) throw new ModelFilesError(where, `"stages.${name}.model" must name a file in the folder, got ${JSON.stringify(stage.model)}`);
    if (!DTYPE_NAMES.includes(stage.dtype as DtypeName)) throw new ModelFilesError(where, `"stages.${name}.dtype" must be one of ${DTYPE_NAMES.join(', ')}, got ${JSON.stringify(stage.dtype)}`);
    if (!isObject(stage.format) || (stage.format.dtype !== 'float32' && stage.format.dtype !== 'float16')) {
      throw new ModelFilesError(where, `"stages.${name}.format" must be { dtype: float32 | float16, quant? }, got ${JSON.stringify(stage.format)}`);
    }
    checkFiles(stage.files, `stages.${name}.files`, where);
    if (!(stage.files as FileEntry[]).some((f) => f.name === stage.model)) throw new ModelFilesError(where, `"stages.${name}.files" does not list its model ${stage.model}`);
  }
  checkFiles(m.tokenizer, 'tokenizer', where);
}
