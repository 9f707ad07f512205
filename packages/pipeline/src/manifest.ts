import { ModelFilesError } from '@llava-mini/core';
import { LLAMA_FILES } from '@llava-mini/llm';
import { DTYPE_NAMES, type DtypeName, GRAPHS, type GraphName, STAGES, stageOf, TARGETS } from './formats.js';
import { readModelConfig } from './model-config.js';
import type { ModelPlan } from './plan.js';

export const MANIFEST_FILE = 'manifest.json';
/** The file each graph is written to in a converted folder (its weights in `<file>.data`, `.data.1`, ... beside it). */
export const GRAPH_FILES: Readonly<Record<GraphName, string>> = {
  encoder: 'encoder.onnx',
  compressor: 'compressor.onnx',
  prefusion: 'prefusion.onnx',
  llm: LLAMA_FILES.model,
  embeddings: LLAMA_FILES.embeddings,
};
export const MANIFEST_FORMAT = 'llava-mini-onnx';
// 2: pre-fusion is one causal GroupQueryAttention graph over a cacheable picture prefix (no attention_bias input).
// 3: the LLM decoder looks up its own token ids (input_ids after inputs_embeds), and float32 decoders
//    read the KV cache as an input and return only the new rows (position_ids, past_bias, causal_bias).
//    Earlier version 3 manifests also hold `keyGrid` and each stage's weight `format`: config.json and
//    the graphs say both, so they are no longer written, and are ignored where present.
export const MANIFEST_VERSION = 3;

export interface FileEntry {
  name: string;
  bytes: number;
  sha256: string;
}

export interface StageEntry {
  /** The .onnx file; its external data files are listed in `files` too. */
  model: string;
  /** The dtype its stage was converted to (the embeddings table's is the LLM's). */
  dtype: DtypeName;
  files: FileEntry[];
}

/**
 * What a converted model folder holds; written last, so a folder with a manifest is complete. It
 * stores the conversion's plan (ModelPlan) and nothing that can be derived from it or the graphs:
 * config.json as written, the plan's other facts as fields, its dtypes in the stage entries.
 */
export interface Manifest extends Pick<ModelPlan, 'target' | 'contextLength' | 'prefusionPositions' | 'compressor'> {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  created: string;
  /** The checkpoint's config.json (the stages' settings are read from it) and generation config. */
  config: Record<string, unknown>;
  generationConfig?: Record<string, unknown>;
  stages: Record<GraphName, StageEntry>;
  tokenizer: FileEntry[];
}

/** The files a conversion wrote: each graph's (its .onnx first) and the tokenizer's. */
export interface ConvertedFiles {
  stages: Record<GraphName, FileEntry[]>;
  tokenizer: FileEntry[];
}

/** The manifest of a conversion: its plan and the files it wrote. */
export function manifestOf(plan: ModelPlan, files: ConvertedFiles, generationConfig?: Record<string, unknown>): Manifest {
  const stages = Object.fromEntries(
    GRAPHS.map((name) => [name, { model: GRAPH_FILES[name], dtype: plan.dtypes[stageOf(name)], files: files.stages[name] }]),
  ) as Record<GraphName, StageEntry>;
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    created: new Date().toISOString(),
    target: plan.target,
    config: plan.config.json,
    generationConfig,
    contextLength: plan.contextLength,
    prefusionPositions: plan.prefusionPositions,
    compressor: plan.compressor,
    stages,
    tokenizer: files.tokenizer,
  };
}

/** The plan a folder was converted with, its config.json read (an UnsupportedConfigError names the key). */
export function manifestPlan(m: Manifest): ModelPlan {
  return {
    config: readModelConfig(m.config),
    compressor: m.compressor,
    target: m.target,
    dtypes: Object.fromEntries(STAGES.map((stage) => [stage, m.stages[stage].dtype])) as ModelPlan['dtypes'],
    contextLength: m.contextLength,
    prefusionPositions: m.prefusionPositions,
  };
}

/** Every file a manifest lists: each graph's, then the tokenizer's. */
export function manifestFiles(m: Manifest): FileEntry[] {
  return [...Object.values(m.stages).flatMap((s) => s.files), ...m.tokenizer];
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
  for (const key of ['contextLength', 'prefusionPositions'] as const) {
    if (!positiveInt(m[key])) throw new ModelFilesError(where, `"${key}" must be a positive integer, got ${JSON.stringify(m[key])}${again}`);
  }
  if (!isObject(m.compressor)) throw new ModelFilesError(where, `has no "compressor" settings${again}`);
  if (!isObject(m.stages)) throw new ModelFilesError(where, `has no "stages" (the model's graphs)${again}`);
  for (const name of GRAPHS) {
    const stage = (m.stages as Record<string, unknown>)[name];
    if (!isObject(stage)) throw new ModelFilesError(where, `has no "stages.${name}"${again}`);
    if (!plainName(stage.model)) throw new ModelFilesError(where, `"stages.${name}.model" must name a file in the folder, got ${JSON.stringify(stage.model)}`);
    if (!DTYPE_NAMES.includes(stage.dtype as DtypeName)) throw new ModelFilesError(where, `"stages.${name}.dtype" must be one of ${DTYPE_NAMES.join(', ')}, got ${JSON.stringify(stage.dtype)}`);
    checkFiles(stage.files, `stages.${name}.files`, where);
    if (!(stage.files as FileEntry[]).some((f) => f.name === stage.model)) throw new ModelFilesError(where, `"stages.${name}.files" does not list its model ${stage.model}`);
  }
  checkFiles(m.tokenizer, 'tokenizer', where);
}
