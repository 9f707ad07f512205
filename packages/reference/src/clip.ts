import { attendHead, layerNorm, linear, mergeHeads, quickGelu, splitHeads } from './math.js';
import { floats, type RefWeights } from './weights.js';

/**
 * CLIP vision tower features for one image, written from spec §1.1 with plain loops:
 * patch conv (no bias) as dot products over each patch, CLS first, + position embeddings,
 * pre_layrnorm, then blocks 1..k (k = hidden_states index of mm_vision_select_layer, 23 of 24 for
 * -2), each `h += out_proj(attn(LN1(h))); h += fc2(quick_gelu(fc1(LN2(h))))`, CLS dropped.
 *
 * `vision` holds the CLIP config keys (hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, image_size, patch_size, layer_norm_eps); `pixels` is [3, S, S].
 * Returns [(S/p)^2, D] (or [(S/p)^2 + 1, D] with CLS first when `keepCls`).
 */
export function refClipFeatures(
  src: RefWeights,
  vision: Record<string, any>,
  pixels: Float32Array,
  options: { selectLayer?: number; keepCls?: boolean; prefix?: string } = {},
): Float32Array {
  const D: number = vision.hidden_size;
  const I: number = vision.intermediate_size;
  const L: number = vision.num_hidden_layers;
  const H: number = vision.num_attention_heads;
  const S: number = vision.image_size;
  const p: number = vision.patch_size;
  const eps: number = vision.layer_norm_eps ?? 1e-5;
  const hd = D / H;
  const n = Math.floor(S / p);
  const T = n * n + 1;
  if (pixels.length !== 3 * S * S) throw new Error(`pixels must be [3, ${S}, ${S}], got ${pixels.length} values`);
  const prefix =
    options.prefix ??
    ['model.vision_tower.vision_tower.vision_model.', 'vision_model.'].find((x) => src.has(`${x}embeddings.class_embedding`)) ??
    (() => {
      throw new Error('no CLIP tower in the checkpoint');
    })();
  const W = (name: string) => floats(src.read(prefix + name));

  // Patch embedding: token 1 + (r*n + c) is the dot product of filter d with the patch at (r, c).
  const conv = W('embeddings.patch_embedding.weight'); // [D, 3, p, p]
  let h: Float32Array = new Float32Array(T * D);
  h.set(W('embeddings.class_embedding'), 0);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let ch = 0; ch < 3; ch++) {
          for (let i = 0; i < p; i++) {
            for (let j = 0; j < p; j++) acc += conv[((d * 3 + ch) * p + i) * p + j] * pixels[(ch * S + r * p + i) * S + c * p + j];
          }
        }
        h[(1 + r * n + c) * D + d] = acc;
      }
    }
  }
  const pos = W('embeddings.position_embedding.weight');
  h = h.map((v, i) => v + pos[i]);
  h = layerNorm(h, W('pre_layrnorm.weight'), W('pre_layrnorm.bias'), D, eps);

  // hidden_states[k] is the output of block k (1-based); negative k counts from the end (L + 1 entries).
  const select = options.selectLayer ?? -2;
  const blocks = select < 0 ? L + 1 + select : select;
  for (let b = 0; b < blocks; b++) {
    const at = (name: string) => W(`encoder.layers.${b}.${name}`);
    const x = layerNorm(h, at('layer_norm1.weight'), at('layer_norm1.bias'), D, eps);
    const q = splitHeads(linear(x, at('self_attn.q_proj.weight'), at('self_attn.q_proj.bias'), D, D), T, H, hd);
    const k = splitHeads(linear(x, at('self_attn.k_proj.weight'), at('self_attn.k_proj.bias'), D, D), T, H, hd);
    const v = splitHeads(linear(x, at('self_attn.v_proj.weight'), at('self_attn.v_proj.bias'), D, D), T, H, hd);
    const heads = q.map((qh, i) => attendHead(qh, k[i], v[i], 1 / Math.sqrt(hd), () => true));
    const attn = linear(mergeHeads(heads, T, hd), at('self_attn.out_proj.weight'), at('self_attn.out_proj.bias'), D, D);
    h = h.map((val, i) => val + attn[i]);

    const y = layerNorm(h, at('layer_norm2.weight'), at('layer_norm2.bias'), D, eps);
    const f1 = linear(y, at('mlp.fc1.weight'), at('mlp.fc1.bias'), D, I).map(quickGelu);
    const f2 = linear(f1, at('mlp.fc2.weight'), at('mlp.fc2.bias'), I, D);
    h = h.map((val, i) => val + f2[i]);
  }
  return options.keepCls ? h : h.slice(D);
}
