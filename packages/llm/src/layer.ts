import { type Graph, linear, param, readWeight, type Value, type WeightFormat, type WeightSource } from '@llava-mini/core';
import type { LlamaConfig } from './config.js';

/**
 * Attention inside a decoder layer, given the projected (not yet rotated) q [B, S, heads*headDim]
 * and k, v [B, S, kvHeads*headDim]; returns [B, S, heads*headDim]. The caller decides how RoPE,
 * masks and caches are done (the backbone: GroupQueryAttention with a KV cache; pre-fusion:
 * MultiHeadAttention with explicit position ids and a padding mask).
 */
export type AttentionFn = (q: Value, k: Value, v: Value) => Value;

/**
 * One LLaMA decoder block (`{prefix}.input_layernorm`, `.self_attn.{q,k,v,o}_proj`,
 * `.post_attention_layernorm`, `.mlp.{gate,up,down}_proj`), pre-norm with residuals:
 *   h   = x + o_proj(attention(q_proj(n1), k_proj(n1), v_proj(n1)))   n1 = RMSNorm(x)
 *   out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))            n2 = RMSNorm(h)
 */
export function llamaLayer(g: Graph, src: WeightSource, prefix: string, c: LlamaConfig, x: Value, attention: AttentionFn, format: WeightFormat): Value {
  return g.scope(prefix, () => {
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const why = `hidden_size=${H}, heads=${c.numHeads}, kv_heads=${c.numKvHeads}, head_dim=${c.headDim}, intermediate_size=${c.intermediateSize}`;
    const w = (name: string, shape: number[]) => readWeight(src, `${prefix}.${name}`, shape, why);

    const n1 = g.simplifiedLayerNorm(x, param(g, `${prefix}.input_layernorm.weight`, w('input_layernorm.weight', [H]), format), c.rmsNormEps);
    const q = linear(g, n1, `${prefix}.self_attn.q_proj`, w('self_attn.q_proj.weight', [qDim, H]), undefined, format);
    const k = linear(g, n1, `${prefix}.self_attn.k_proj`, w('self_attn.k_proj.weight', [kvDim, H]), undefined, format);
    const v = linear(g, n1, `${prefix}.self_attn.v_proj`, w('self_attn.v_proj.weight', [kvDim, H]), undefined, format);
    const attn = linear(g, attention(q, k, v), `${prefix}.self_attn.o_proj`, w('self_attn.o_proj.weight', [H, qDim]), undefined, format);

    const postNorm = param(g, `${prefix}.post_attention_layernorm.weight`, w('post_attention_layernorm.weight', [H]), format);
    const [n2, h] = g.skipSimplifiedLayerNorm(attn, x, postNorm, c.rmsNormEps);
    const gate = linear(g, n2, `${prefix}.mlp.gate_proj`, w('mlp.gate_proj.weight', [c.intermediateSize, H]), undefined, format);
    const up = linear(g, n2, `${prefix}.mlp.up_proj`, w('mlp.up_proj.weight', [c.intermediateSize, H]), undefined, format);
    const silu = g.mul(gate, g.sigmoid(gate));
    const down = linear(g, g.mul(silu, up), `${prefix}.mlp.down_proj`, w('mlp.down_proj.weight', [H, c.intermediateSize]), undefined, format);
    return g.add(h, down);
  });
}
