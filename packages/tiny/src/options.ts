import { InvalidOptionError } from '@llava-mini/core';

export type FloatDTypeName = 'float32' | 'float16' | 'bfloat16';

export type RopeScaling =
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    }
  | { rope_type: 'linear'; factor: number };

export interface TinyOptions {
  /** Default 0. The same seed and options give byte-identical files. */
  seed?: number;
  /** LLM width (the pre-fusion layers share the LLM config). Default 64. */
  hiddenSize?: number;
  /** Default 128. */
  intermediateSize?: number;
  /** Default 2. */
  numHiddenLayers?: number;
  /** Default 4. */
  numAttentionHeads?: number;
  /** Default 2 (grouped-query attention). */
  numKeyValueHeads?: number;
  /** Default 500000. */
  ropeTheta?: number;
  /** Default llama3 {factor 8, low 1, high 4, original 8192}, as in Llama-3.1. */
  ropeScaling?: RopeScaling | null;
  /** Default 131072. */
  maxPositionEmbeddings?: number;
  /** Default false; when true no `lm_head.weight` is written. */
  tieWordEmbeddings?: boolean;
  /** CLIP width. Default 32. */
  visionHiddenSize?: number;
  /** Default 64. */
  visionIntermediateSize?: number;
  /** Default 3; all are written, including the last one that select_layer -2 skips. */
  visionLayers?: number;
  /** Default 2. */
  visionHeads?: number;
  /** Default 336. */
  imageSize?: number;
  /** Default 14. */
  patchSize?: number;
  /** C: the compressor has C*C queries. Default 1. */
  compressorSize?: number;
  /** Must divide visionHiddenSize. Default 4 (the release uses 8 with width 1024). */
  compressorHeads?: number;
  /** Default 2 (the release has 4). */
  prefusionLayers?: number;
  /** N: sub-image split per side. Default 1. */
  resolutionRatio?: number;
  /** Default 'pad'. */
  imageAspectRatio?: 'pad' | 'square';
  /** Default 4096; null leaves the assembled sequence untruncated. */
  tokenizerModelMaxLength?: number | null;
  /** Storage dtype of the LLM-side tensors (LLM, pre-fusion, projector, compressor). Default 'float32'. */
  dtype?: FloatDTypeName;
  /** Storage dtype of the CLIP tensors. Default 'float32'. */
  visionDtype?: FloatDTypeName;
  /** Init std of matrices, biases and embeddings. Default 0.02. */
  std?: number;
  /** Default: everything in one model.safetensors; smaller gives shards plus model.safetensors.index.json. */
  maxShardBytes?: number;
  /** Default true; false leaves out the CLIP tensors (a checkpoint that relies on a separate CLIP folder). */
  includeVision?: boolean;
  /** 'tiny' (default): a small trained byte-level BPE; `{ dir }`: copy a real tokenizer from that folder. */
  tokenizer?: 'tiny' | { dir: string };
}

export type Resolved = Required<Omit<TinyOptions, 'maxShardBytes' | 'ropeScaling' | 'tokenizerModelMaxLength'>> & {
  maxShardBytes: number | undefined;
  ropeScaling: RopeScaling | null;
  tokenizerModelMaxLength: number | null;
};

const DEFAULTS: Resolved = {
  seed: 0,
  hiddenSize: 64,
  intermediateSize: 128,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  ropeTheta: 500000,
  ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  maxPositionEmbeddings: 131072,
  tieWordEmbeddings: false,
  visionHiddenSize: 32,
  visionIntermediateSize: 64,
  visionLayers: 3,
  visionHeads: 2,
  imageSize: 336,
  patchSize: 14,
  compressorSize: 1,
  compressorHeads: 4,
  prefusionLayers: 2,
  resolutionRatio: 1,
  imageAspectRatio: 'pad',
  tokenizerModelMaxLength: 4096,
  dtype: 'float32',
  visionDtype: 'float32',
  std: 0.02,
  maxShardBytes: undefined,
  includeVision: true,
  tokenizer: 'tiny',
};

const FLOAT_DTYPES: readonly string[] = ['float32', 'float16', 'bfloat16'];

function fail(option: string, message: string, value: unknown): never {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  throw new InvalidOptionError(`${option} ${message}, got ${shown}`);
}

function positiveInt(option: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) fail(option, 'must be a positive integer', value);
}

function positiveNumber(option: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) fail(option, 'must be a positive finite number', value);
}

function divides(option: string, divisor: number, what: string, dividend: number): void {
  if (dividend % divisor !== 0) throw new InvalidOptionError(`${option} (${divisor}) must divide ${what} (${dividend})`);
}

function checkRopeScaling(value: unknown): void {
  if (value === null) return;
  if (typeof value !== 'object' || Array.isArray(value)) fail('ropeScaling', 'must be null or an object', value);
  const r = value as Record<string, unknown>;
  if (r.rope_type === 'linear') {
    positiveNumber('ropeScaling.factor', r.factor);
  } else if (r.rope_type === 'llama3') {
    positiveNumber('ropeScaling.factor', r.factor);
    positiveNumber('ropeScaling.low_freq_factor', r.low_freq_factor);
    positiveNumber('ropeScaling.high_freq_factor', r.high_freq_factor);
    positiveInt('ropeScaling.original_max_position_embeddings', r.original_max_position_embeddings);
    // transformers divides by (high - low) when blending the two bands.
    if ((r.high_freq_factor as number) <= (r.low_freq_factor as number)) {
      fail('ropeScaling.high_freq_factor', 'must be greater than low_freq_factor', r.high_freq_factor);
    }
  } else {
    fail('ropeScaling.rope_type', "must be 'llama3' or 'linear'", r.rope_type);
  }
}

/** Fill in the defaults and check every option, naming the offending one in an InvalidOptionError. */
export function resolveOptions(options: TinyOptions = {}): Resolved {
  if (options === null || typeof options !== 'object') fail('options', 'must be an object', options);
  // A misspelt option would otherwise silently fall back to its default.
  for (const key of Object.keys(options)) {
    if (!(key in DEFAULTS)) throw new InvalidOptionError(`unknown option '${key}'`);
  }
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const o: Resolved = { ...DEFAULTS, ...defined } as Resolved;

  if (typeof o.seed !== 'number' || !Number.isSafeInteger(o.seed) || o.seed < 0) fail('seed', 'must be a non-negative safe integer', o.seed);
  for (const key of [
    'hiddenSize',
    'intermediateSize',
    'numHiddenLayers',
    'numAttentionHeads',
    'numKeyValueHeads',
    'maxPositionEmbeddings',
    'visionHiddenSize',
    'visionIntermediateSize',
    'visionLayers',
    'visionHeads',
    'imageSize',
    'patchSize',
    'compressorSize',
    'compressorHeads',
    'prefusionLayers',
    'resolutionRatio',
  ] as const) {
    positiveInt(key, o[key]);
  }
  positiveNumber('ropeTheta', o.ropeTheta);
  positiveNumber('std', o.std);
  if (o.maxShardBytes !== undefined) positiveInt('maxShardBytes', o.maxShardBytes);
  if (o.tokenizerModelMaxLength !== null) positiveInt('tokenizerModelMaxLength', o.tokenizerModelMaxLength);
  checkRopeScaling(o.ropeScaling);

  divides('numAttentionHeads', o.numAttentionHeads, 'hiddenSize', o.hiddenSize);
  divides('numKeyValueHeads', o.numKeyValueHeads, 'numAttentionHeads', o.numAttentionHeads);
  // RoPE rotates the two halves of each head against each other.
  if ((o.hiddenSize / o.numAttentionHeads) % 2 !== 0) {
    throw new InvalidOptionError(`hiddenSize / numAttentionHeads (head_dim ${o.hiddenSize / o.numAttentionHeads}) must be even for RoPE`);
  }
  divides('visionHeads', o.visionHeads, 'visionHiddenSize', o.visionHiddenSize);
  divides('compressorHeads', o.compressorHeads, 'visionHiddenSize', o.visionHiddenSize);
  divides('patchSize', o.patchSize, 'imageSize', o.imageSize);
  // The compressor's 2D sin-cos table splits the width into four equal quarters.
  if (o.visionHiddenSize % 4 !== 0) fail('visionHiddenSize', 'must be a multiple of 4 (2D sin-cos pos_embed)', o.visionHiddenSize);

  if (o.imageAspectRatio !== 'pad' && o.imageAspectRatio !== 'square') fail('imageAspectRatio', "must be 'pad' or 'square'", o.imageAspectRatio);
  if (!FLOAT_DTYPES.includes(o.dtype)) fail('dtype', "must be 'float32', 'float16' or 'bfloat16'", o.dtype);
  if (!FLOAT_DTYPES.includes(o.visionDtype)) fail('visionDtype', "must be 'float32', 'float16' or 'bfloat16'", o.visionDtype);
  if (typeof o.tieWordEmbeddings !== 'boolean') fail('tieWordEmbeddings', 'must be a boolean', o.tieWordEmbeddings);
  if (typeof o.includeVision !== 'boolean') fail('includeVision', 'must be a boolean', o.includeVision);
  const tok = o.tokenizer as unknown;
  if (tok !== 'tiny' && !(tok !== null && typeof tok === 'object' && typeof (tok as { dir?: unknown }).dir === 'string' && (tok as { dir: string }).dir !== '')) {
    fail('tokenizer', "must be 'tiny' or { dir: string }", tok);
  }
  return o;
}
