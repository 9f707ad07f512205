import { ModelFilesError, type WeightFormat } from '@llava-mini/core';
import type { CompressorConfig } from '@llava-mini/compressor';
import type { DtypeName, StageName, Target } from './formats.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'llava-mini-onnx';
// 2: pre-fusion is one causal GroupQueryAttention graph over a cacheable picture prefix (no attention_bias input).
export const MANIFEST_VERSION = 2;

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
  return m;
}
