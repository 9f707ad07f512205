import { refClipFeatures } from './clip.js';
import { refCompressor } from './compressor.js';
import { argmax, RefLlama, refLlamaConfig } from './llama.js';
import { refPrefusion } from './prefusion.js';
import type { RefWeights } from './weights.js';

/** One picture as CLIP input: `pixels` is [pieces, 3, S, S] (HD: N*N crops, then the full image). */
export interface RefPicture {
  pixels: Float32Array;
  pieces: number;
}

/**
 * The whole of LLaVA-Mini in plain TypeScript (spec §11): per picture CLIP -> (HD stitch) ->
 * compressor -> pre-fusion with the prompt; vision tokens concatenated, fused text averaged; the
 * placeholder replaced by the vision tokens; greedy decoding on the LLaMA reference. Returns the
 * LLM input rows [rows, H] and the generated ids (stop id excluded). Slow on purpose: every number
 * comes from loops over the spec.
 */
export function refGenerate(
  src: RefWeights,
  json: Record<string, any>,
  pictures: RefPicture[],
  ids: number[],
  options: { maxNewTokens: number; stopIds: readonly number[] },
): { embeds: Float32Array; ids: number[] } {
  const vision = json.vision_config;
  const D: number = vision.hidden_size;
  const g = Math.floor(vision.image_size / vision.patch_size);
  const N: number = json.resolution_ratio ?? 1;
  const llama = new RefLlama(src, refLlamaConfig(json));
  const H = llama.config.hidden;
  const textEmbeds = llama.embed(ids.map((id) => Math.max(id, 0)));

  const visionTokens: Float32Array[] = [];
  const fusedSum = new Float64Array(textEmbeds.length);
  for (const pic of pictures) {
    const per = pic.pixels.length / pic.pieces;
    const feats = Array.from({ length: pic.pieces }, (_, k) => refClipFeatures(src, vision, pic.pixels.subarray(k * per, (k + 1) * per)));
    // HD: sub-image k = i*N + j fills rows i*g.., columns j*g.. of one (gN)x(gN) grid.
    const side = g * N;
    const grid = N === 1 ? feats[0] : new Float32Array(side * side * D);
    if (N > 1) {
      for (let k = 0; k < N * N; k++) {
        const [i, j] = [Math.floor(k / N), k % N];
        for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) grid.set(feats[k].subarray((r * g + c) * D, (r * g + c + 1) * D), ((i * g + r) * side + j * g + c) * D);
      }
    }
    const imageFeatures = N === 1 ? grid : concat(grid, feats[N * N]);
    const compressed = refCompressor(src, json, grid);
    const fused = refPrefusion(src, json, { imageFeatures, compressed, textEmbeds, ids });
    visionTokens.push(fused.visionTokens);
    fused.fusedText.forEach((v, i) => (fusedSum[i] += v));
  }
  const fusedText = Float32Array.from(fusedSum, (v) => v / pictures.length);
  const p = ids.indexOf(-200);
  const embeds = concat(fusedText.subarray(0, p * H), ...visionTokens, fusedText.subarray((p + 1) * H));

  const out: number[] = [];
  let logits = llama.step(embeds);
  while (out.length < options.maxNewTokens) {
    const id = argmax(logits);
    if (options.stopIds.includes(id)) break;
    out.push(id);
    if (out.length < options.maxNewTokens) logits = llama.step(llama.embed([id]));
  }
  return { embeds, ids: out };
}

function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
