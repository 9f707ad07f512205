import { attendHead, linear, mergeHeads, rmsNorm, silu, splitHeads } from './math.js';
import { floats, type RefWeights } from './weights.js';

/** The LLaMA hyper-parameters, read straight from config.json's keys. */
export interface RefLlamaConfig {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  theta: number;
  scaling: Record<string, number | string> | null;
  vocab: number;
  tied: boolean;
}

export function refLlamaConfig(json: Record<string, any>): RefLlamaConfig {
  const heads = json.num_attention_heads;
  return {
    hidden: json.hidden_size,
    intermediate: json.intermediate_size,
    layers: json.num_hidden_layers,
    heads,
    kvHeads: json.num_key_value_heads ?? heads,
    headDim: json.head_dim ?? json.hidden_size / heads,
    eps: json.rms_norm_eps,
    theta: json.rope_theta ?? 10000,
    scaling: json.rope_scaling ?? null,
    vocab: json.vocab_size,
    tied: json.tie_word_embeddings === true,
  };
}

/** RoPE frequencies per spec §4.1 (llama3 scaling as transformers 4.43 computes it, or linear). */
export function refInvFreq(c: RefLlamaConfig): number[] {
  const freqs = Array.from({ length: c.headDim / 2 }, (_, i) => c.theta ** (-(2 * i) / c.headDim));
  const s = c.scaling;
  if (!s) return freqs;
  const type = s.rope_type ?? s.type;
  const factor = s.factor as number;
  if (type === 'linear') return freqs.map((f) => f / factor);
  const orig = s.original_max_position_embeddings as number;
  const low = s.low_freq_factor as number;
  const high = s.high_freq_factor as number;
  return freqs.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < orig / high) return f;
    if (wavelen > orig / low) return f / factor;
    const smooth = (orig / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** Rotate-half RoPE on one head vector at position p: dims i and i + d/2 form a pair. */
export function rotate(x: Float64Array, p: number, invFreq: number[]): Float64Array {
  const half = x.length / 2;
  const out = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const c = Math.cos(p * invFreq[i]);
    const s = Math.sin(p * invFreq[i]);
    out[i] = x[i] * c - x[i + half] * s;
    out[i + half] = x[i + half] * c + x[i] * s;
  }
  return out;
}

export interface LayerCache {
  k: Float64Array[][]; // [kvHeads][positions so far] rotated keys
  v: Float64Array[][];
}

/**
 * One decoder layer over new rows x [S, hidden] at RoPE positions `pos`. Keys and values are
 * appended to `cache`; query i may see cached key j when `allowed(i, j)` (j indexes the cache).
 */
export function refDecoderLayer(
  src: RefWeights,
  prefix: string,
  c: RefLlamaConfig,
  x: Float32Array,
  pos: number[],
  cache: LayerCache,
  allowed: (i: number, j: number) => boolean,
): Float32Array {
  const W = (n: string) => floats(src.read(`${prefix}.${n}`));
  const S = pos.length;
  const H = c.hidden;
  const invFreq = refInvFreq(c);
  const n1 = rmsNorm(x, W('input_layernorm.weight'), H, c.eps);
  const q = splitHeads(linear(n1, W('self_attn.q_proj.weight'), undefined, H, c.heads * c.headDim), S, c.heads, c.headDim);
  const k = splitHeads(linear(n1, W('self_attn.k_proj.weight'), undefined, H, c.kvHeads * c.headDim), S, c.kvHeads, c.headDim);
  const v = splitHeads(linear(n1, W('self_attn.v_proj.weight'), undefined, H, c.kvHeads * c.headDim), S, c.kvHeads, c.headDim);
  for (let h = 0; h < c.kvHeads; h++) {
    cache.k[h] ??= [];
    cache.v[h] ??= [];
    k[h].forEach((row, s) => cache.k[h].push(rotate(row, pos[s], invFreq)));
    v[h].forEach((row) => cache.v[h].push(row));
  }
  const group = c.heads / c.kvHeads;
  const heads = q.map((rows, h) => {
    const rotated = rows.map((row, s) => rotate(row, pos[s], invFreq));
    const kv = Math.floor(h / group);
    return attendHead(rotated, cache.k[kv], cache.v[kv], 1 / Math.sqrt(c.headDim), allowed);
  });
  const attn = linear(mergeHeads(heads, S, c.headDim), W('self_attn.o_proj.weight'), undefined, c.heads * c.headDim, H);
  const h = x.map((val, i) => val + attn[i]);
  const n2 = rmsNorm(h, W('post_attention_layernorm.weight'), H, c.eps);
  const gate = linear(n2, W('mlp.gate_proj.weight'), undefined, H, c.intermediate);
  const up = linear(n2, W('mlp.up_proj.weight'), undefined, H, c.intermediate);
  const down = linear(gate.map((g, i) => silu(g) * up[i]), W('mlp.down_proj.weight'), undefined, c.intermediate, H);
  return h.map((val, i) => val + down[i]);
}

/**
 * The LLaMA backbone with a growing cache: `step(embeds)` runs new rows through every layer
 * (plain causal attention over everything seen so far) and returns the logits of its last row.
 */
export class RefLlama {
  private readonly caches: LayerCache[];
  private seen = 0;

  constructor(
    private readonly src: RefWeights,
    readonly config: RefLlamaConfig,
  ) {
    this.caches = Array.from({ length: config.layers }, () => ({ k: [], v: [] }));
  }

  embed(ids: number[]): Float32Array {
    const table = floats(this.src.read('model.embed_tokens.weight'));
    const H = this.config.hidden;
    const out = new Float32Array(ids.length * H);
    ids.forEach((id, s) => out.set(table.subarray(id * H, (id + 1) * H), s * H));
    return out;
  }

  /** Run rows [S, hidden]; returns the logits [vocab] of the last row. */
  step(embeds: Float32Array): Float32Array {
    const c = this.config;
    const S = embeds.length / c.hidden;
    const start = this.seen;
    const pos = Array.from({ length: S }, (_, i) => start + i);
    let x = embeds;
    for (let l = 0; l < c.layers; l++) {
      x = refDecoderLayer(this.src, `model.layers.${l}`, c, x, pos, this.caches[l], (i, j) => j <= start + i);
    }
    this.seen += S;
    const last = rmsNorm(x.subarray((S - 1) * c.hidden), floats(this.src.read('model.norm.weight')), c.hidden, c.eps);
    const head = floats(this.src.read(c.tied ? 'model.embed_tokens.weight' : 'lm_head.weight'));
    return linear(last, head, undefined, c.hidden, c.vocab);
  }
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
