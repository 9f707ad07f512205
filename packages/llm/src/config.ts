import { InvalidOptionError, UnsupportedConfigError } from '@llava-mini/core';

export type RopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number }
  | { type: 'linear'; factor: number };

/** The LLaMA text-model hyper-parameters, shared by the backbone and the pre-fusion layers. */
export interface LlamaConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
}

function int(json: Record<string, unknown>, key: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new UnsupportedConfigError(key, `expected a positive integer, got ${JSON.stringify(json[key])}`);
  }
  return v;
}

function num(json: Record<string, unknown>, key: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new UnsupportedConfigError(key, `expected a positive number, got ${JSON.stringify(json[key])}`);
  return v;
}

function readRopeScaling(raw: unknown): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object') throw new UnsupportedConfigError('rope_scaling', `expected an object or null, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type === 'linear') return { type, factor: num(r, 'factor') };
  if (type === 'llama3') {
    return {
      type,
      factor: num(r, 'factor'),
      lowFreqFactor: num(r, 'low_freq_factor'),
      highFreqFactor: num(r, 'high_freq_factor'),
      originalMaxPositionEmbeddings: int(r, 'original_max_position_embeddings'),
    };
  }
  throw new UnsupportedConfigError('rope_scaling', `rope type ${JSON.stringify(type)} is not supported (supported: llama3, linear, default/none)`);
}

/** Read and check the LLaMA keys of a Hugging Face config.json (LLaVA-Mini's top level). */
export function readLlamaConfig(json: Record<string, unknown>): LlamaConfig {
  const hiddenSize = int(json, 'hidden_size');
  const numHeads = int(json, 'num_attention_heads');
  const numKvHeads = int(json, 'num_key_value_heads', numHeads);
  const headDim = int(json, 'head_dim', hiddenSize / numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new UnsupportedConfigError('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  const act = json.hidden_act ?? 'silu';
  if (act !== 'silu') throw new UnsupportedConfigError('hidden_act', `only silu is supported, got ${JSON.stringify(act)}`);
  for (const key of ['attention_bias', 'mlp_bias'] as const) {
    if (json[key] === true) throw new UnsupportedConfigError(key, 'biases in LLaMA projections are not supported');
  }
  return {
    hiddenSize,
    intermediateSize: int(json, 'intermediate_size'),
    numLayers: int(json, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int(json, 'vocab_size'),
    rmsNormEps: num(json, 'rms_norm_eps', 1e-6),
    ropeTheta: num(json, 'rope_theta', 10000),
    ropeScaling: readRopeScaling(json.rope_scaling),
    maxPositionEmbeddings: int(json, 'max_position_embeddings', 2048),
    tieWordEmbeddings: json.tie_word_embeddings === true,
  };
}

/**
 * RoPE inverse frequencies [headDim/2], with the checkpoint's scaling applied (transformers'
 * `_compute_llama3_parameters` and linear scaling).
 */
export function ropeInverseFrequencies(c: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / c.ropeTheta ** ((2 * i) / c.headDim);
  const s = c.ropeScaling;
  if (s?.type === 'linear') for (let i = 0; i < half; i++) inv[i] /= s.factor;
  if (s?.type === 'llama3') {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        inv[i] /= s.factor;
        continue;
      }
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
    }
  }
  return inv;
}

/**
 * cos/sin caches [positions, headDim/2] for onnxruntime's rotary kernels (rotate-half layout: they
 * pair dim i with i + headDim/2, as Hugging Face's LLaMA weights expect).
 */
export function ropeCaches(c: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>, positions: number): { cos: Float32Array; sin: Float32Array } {
  if (!Number.isInteger(positions) || positions <= 0) throw new InvalidOptionError(`rope cache needs a positive position count, got ${positions}`);
  const inv = ropeInverseFrequencies(c);
  const half = inv.length;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = Math.cos(p * inv[i]);
      sin[p * half + i] = Math.sin(p * inv[i]);
    }
  }
  return { cos, sin };
}
