import { refDecoderLayer, refLlamaConfig } from './llama.js';
import { gelu, linear } from './math.js';
import { floats, type RefWeights } from './weights.js';

export interface RefPrefusionInputs {
  /** [M, D] CLIP features (HD: stitched sub-image tokens, then the global image's). */
  imageFeatures: Float32Array;
  /** [C*C, D] compressor output. */
  compressed: Float32Array;
  /** [L, H] embed_tokens(max(ids, 0)). */
  textEmbeds: Float32Array;
  /** Prompt ids with -200 at the image placeholder. */
  ids: number[];
}

/** mlp2x_gelu: Linear(D -> H), exact GELU, Linear(H -> H), per row. */
export function refProjector(src: RefWeights, x: Float32Array, D: number, H: number): Float32Array {
  const W = (n: string) => floats(src.read(`model.mm_projector.${n}`));
  const hidden = linear(x, W('0.weight'), W('0.bias'), D, H).map(gelu);
  return linear(hidden, W('2.weight'), W('2.bias'), H, H);
}

/**
 * Modality pre-fusion (spec §3): X = [projector(image); projector(compressed); text], run through
 * `prefusion_layer_num` LLaMA layers with causal + key-padding attention and cumsum positions.
 * Returns the rows at the compressed slots and the text rows (padded rows keep their embedding).
 */
export function refPrefusion(src: RefWeights, json: Record<string, any>, inputs: RefPrefusionInputs): { visionTokens: Float32Array; fusedText: Float32Array } {
  const c = refLlamaConfig(json);
  const H = c.hidden;
  const D: number = json.mm_hidden_size;
  const { ids, textEmbeds } = inputs;
  const M = inputs.imageFeatures.length / D;
  const CC = inputs.compressed.length / D;
  const L = ids.length;
  const T = M + CC + L;

  const x0 = new Float32Array(T * H);
  x0.set(refProjector(src, inputs.imageFeatures, D, H), 0);
  x0.set(refProjector(src, inputs.compressed, D, H), M * H);
  x0.set(textEmbeds, (M + CC) * H);

  const valid = [...Array<boolean>(M + CC).fill(true), ...ids.map((id) => id > 0)];
  let count = 0;
  const pos = valid.map((v) => {
    if (v) count++;
    return v ? count - 1 : 1;
  });
  const allowed = (i: number, j: number) => j <= i && valid[j];

  let x: Float32Array = x0;
  const layers: number = json.prefusion_layer_num ?? 4;
  for (let l = 0; l < layers; l++) x = refDecoderLayer(src, `model.prefusion_layers.${l}`, c, x, pos, { k: [], v: [] }, allowed);

  const visionTokens = x.slice(M * H, (M + CC) * H);
  const fusedText = x.slice((M + CC) * H);
  ids.forEach((id, t) => {
    if (id <= 0) fusedText.set(textEmbeds.subarray(t * H, (t + 1) * H), t * H);
  });
  return { visionTokens, fusedText };
}
