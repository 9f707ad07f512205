/**
 * The LLM backbone of a Hugging Face LLaMA (or LLaVA-Mini) checkpoint folder as a llama.cpp GGUF,
 * the way llama.cpp's convert_hf_to_gguf.py writes a LlamaForCausalLM:
 *
 *   model.embed_tokens.weight              -> token_embd.weight        [H, V] (ggml order)
 *   model.layers.{i}.input_layernorm       -> blk.{i}.attn_norm         (F32, as llama.cpp keeps norms)
 *   model.layers.{i}.self_attn.{q,k,v,o}   -> blk.{i}.attn_{q,k,v,output}
 *   model.layers.{i}.post_attention_layernorm -> blk.{i}.ffn_norm
 *   model.layers.{i}.mlp.{gate,up,down}    -> blk.{i}.ffn_{gate,up,down}
 *   model.norm.weight, lm_head.weight      -> output_norm.weight, output.weight
 *   rope_scaling (llama3)                  -> rope_freqs.weight          [headDim/2] per-frequency divisors
 *
 * q_proj and k_proj rows are permuted per head from Hugging Face's rotate-half RoPE pairing
 * (i, i + d/2) to llama.cpp's adjacent pairing (2i, 2i + 1); everything else is stored as is.
 * The tokenizer is tokenizer.json's byte-level BPE (llama.cpp's "gpt2" model with the Llama-3
 * pre-tokenizer "llama-bpe"): tokens by id, token types (added special tokens are control tokens),
 * merges, bos/eos from config.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readWeight, toFloat32, type WeightSource } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { type LlamaConfig, readLlamaConfig, ropeInverseFrequencies } from '@llava-mini/llm/node';
import { f32, ggmlBytes, type GgmlType, type GgufTensor, type GgufValue, str, u32, writeGguf } from './gguf.js';

/** Weight type of the 2-D tensors (matrices, embedding table, head); norms stay F32. */
export type GgufWeights = 'F32' | 'F16' | 'Q8_0' | 'Q4_0';
const FILE_TYPE: Record<GgufWeights, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 }; // llama_ftype

/** Rows of a [rows, cols] matrix reordered per head: rotate-half pairing to adjacent pairing (convert_hf_to_gguf's permute). */
export function permuteForLlamaCpp(w: Float32Array, heads: number, rows: number, cols: number): Float32Array {
  const d = rows / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < d / 2; j++) {
      out.set(w.subarray((h * d + j) * cols, (h * d + j + 1) * cols), (h * d + 2 * j) * cols);
      out.set(w.subarray((h * d + d / 2 + j) * cols, (h * d + d / 2 + j + 1) * cols), (h * d + 2 * j + 1) * cols);
    }
  }
  return out;
}

interface HfTokenizer {
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

function tokenizerMetadata(dir: string, vocabSize: number, json: Record<string, unknown>): Record<string, GgufValue> {
  const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as HfTokenizer;
  if (tok.model.type !== 'BPE') throw new Error(`tokenizer.json: only byte-level BPE is exported, got ${tok.model.type}`);
  const tokens = new Array<string>(vocabSize);
  const types = new Int32Array(vocabSize).fill(1); // NORMAL
  for (const [text, id] of Object.entries(tok.model.vocab)) if (id < vocabSize) tokens[id] = text;
  for (const a of tok.added_tokens ?? []) {
    if (a.id >= vocabSize) continue;
    tokens[a.id] = a.content;
    types[a.id] = a.special ? 3 : 4; // CONTROL : USER_DEFINED
  }
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = 5; // UNUSED
    }
  }
  const merges = tok.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' ')));
  const id = (key: string): Record<string, GgufValue> => {
    const v = json[key];
    const first = Array.isArray(v) ? v[0] : v;
    return typeof first === 'number' ? { [`tokenizer.ggml.${key}`]: u32(first) } : {};
  };
  return {
    'tokenizer.ggml.model': str('gpt2'),
    'tokenizer.ggml.pre': str('llama-bpe'),
    'tokenizer.ggml.tokens': { type: 'string[]', value: tokens },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: types },
    'tokenizer.ggml.merges': { type: 'string[]', value: merges },
    ...id('bos_token_id'),
    ...id('eos_token_id'),
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
  };
}

function llamaMetadata(c: LlamaConfig, weights: GgufWeights, name: string): Record<string, GgufValue> {
  return {
    'general.architecture': str('llama'),
    'general.name': str(name),
    'general.file_type': u32(FILE_TYPE[weights]),
    'llama.context_length': u32(c.maxPositionEmbeddings),
    'llama.embedding_length': u32(c.hiddenSize),
    'llama.block_count': u32(c.numLayers),
    'llama.feed_forward_length': u32(c.intermediateSize),
    'llama.attention.head_count': u32(c.numHeads),
    'llama.attention.head_count_kv': u32(c.numKvHeads),
    'llama.attention.key_length': u32(c.headDim),
    'llama.attention.value_length': u32(c.headDim),
    'llama.rope.dimension_count': u32(c.headDim),
    'llama.rope.freq_base': f32(c.ropeTheta),
    'llama.attention.layer_norm_rms_epsilon': f32(c.rmsNormEps),
    'llama.vocab_size': u32(c.vocabSize),
    ...(c.ropeScaling?.type === 'linear'
      ? { 'llama.rope.scaling.type': str('linear'), 'llama.rope.scaling.factor': f32(c.ropeScaling.factor) }
      : {}),
  };
}

/** The GGUF tensors of the backbone, each read from the checkpoint only when written. */
function llamaTensors(src: WeightSource, c: LlamaConfig, weights: GgufWeights): GgufTensor[] {
  const H = c.hiddenSize;
  const read = (name: string, shape: number[]) => () => toFloat32(readWeight(src, name, shape));
  const matrix = (name: string, hf: string, rows: number, cols: number, permuteHeads?: number): GgufTensor => ({
    name,
    dims: [cols, rows],
    type: weights as GgmlType,
    data: () => {
      const w = toFloat32(readWeight(src, hf, [rows, cols]));
      return permuteHeads ? permuteForLlamaCpp(w, permuteHeads, rows, cols) : w;
    },
  });
  const norm = (name: string, hf: string): GgufTensor => ({ name, dims: [H], type: 'F32', data: read(hf, [H]) });
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const out: GgufTensor[] = [matrix('token_embd.weight', 'model.embed_tokens.weight', c.vocabSize, H)];
  if (c.ropeScaling?.type === 'llama3') {
    // llama.cpp divides each frequency by its factor: factor_i = plain_i / scaled_i.
    const plain = ropeInverseFrequencies({ ...c, ropeScaling: null });
    const scaled = ropeInverseFrequencies(c);
    out.push({ name: 'rope_freqs.weight', dims: [c.headDim / 2], type: 'F32', data: () => Float32Array.from(plain, (p, i) => p / scaled[i]) });
  }
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    out.push(
      norm(`blk.${l}.attn_norm.weight`, `${p}.input_layernorm.weight`),
      matrix(`blk.${l}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, q, H, c.numHeads),
      matrix(`blk.${l}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, kv, H, c.numKvHeads),
      matrix(`blk.${l}.attn_v.weight`, `${p}.self_attn.v_proj.weight`, kv, H),
      matrix(`blk.${l}.attn_output.weight`, `${p}.self_attn.o_proj.weight`, H, q),
      norm(`blk.${l}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`),
      matrix(`blk.${l}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`, c.intermediateSize, H),
      matrix(`blk.${l}.ffn_up.weight`, `${p}.mlp.up_proj.weight`, c.intermediateSize, H),
      matrix(`blk.${l}.ffn_down.weight`, `${p}.mlp.down_proj.weight`, H, c.intermediateSize),
    );
  }
  out.push(norm('output_norm.weight', 'model.norm.weight'));
  if (!c.tieWordEmbeddings) out.push(matrix('output.weight', 'lm_head.weight', c.vocabSize, H));
  return out;
}

/** Write `file` (atomically) from the checkpoint folder `dir`; returns its size in bytes. */
export function writeLlamaGguf(dir: string, file: string, weights: GgufWeights): number {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const c = readLlamaConfig(json);
  const src = Checkpoint.open(dir);
  try {
    const tensors = llamaTensors(src, c, weights);
    writeGguf(file, { ...llamaMetadata(c, weights, path.basename(dir)), ...tokenizerMetadata(dir, c.vocabSize, json) }, tensors);
    return fs.statSync(file).size;
  } finally {
    src.close();
  }
}

/** Bytes of the weight tensors a decode step reads (everything but the embedding table). */
export function ggufStepBytes(c: LlamaConfig, weights: GgufWeights): number {
  const H = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perLayer = ggmlBytes(weights, q * H) * 2 + ggmlBytes(weights, kv * H) * 2 + ggmlBytes(weights, c.intermediateSize * H) * 3 + 8 * H;
  return c.numLayers * perLayer + 4 * H + ggmlBytes(weights, c.vocabSize * H);
}
