import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WeightSource } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { seededFloats } from '@llava-mini/core/testing';
import { cachedFloat32, refCompressor } from '@llava-mini/reference';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';

export const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-mini-prefusion-'));

let counter = 0;
/**
 * A tiny checkpoint without CLIP. std 0.1 (instead of 0.02) makes attention peaked, so a wrong
 * mask or position shows up far above the 1e-4 tolerance.
 */
export async function tiny(options: TinyOptions) {
  const dir = path.join(root, `ckpt-${counter++}`);
  const { config } = await writeTinyCheckpoint(dir, { includeVision: false, std: 0.1, ...options });
  return { dir, json: config, src: cachedFloat32(Checkpoint.open(dir)) };
}

/** A prompt with the placeholder in the middle and a token id 0 ("!"), which pre-fusion treats as padding. */
export const PROMPT = [512, 512, 30, 71, 5, -200, 10, 0, 99, 250, 7, 513];

/** embed_tokens(max(ids, 0)), spec §3.2. */
export function embed(src: WeightSource & { float32(n: string): Float32Array }, ids: readonly number[], H: number): Float32Array {
  const table = src.float32('model.embed_tokens.weight');
  const out = new Float32Array(ids.length * H);
  ids.forEach((id, t) => out.set(table.subarray(Math.max(id, 0) * H, (Math.max(id, 0) + 1) * H), t * H));
  return out;
}

/**
 * The image side of one pre-fusion call from random CLIP features, laid out as spec §5: with N > 1,
 * the N*N sub-image grids (s x s each, row-major pieces) stitched into one (sN) x (sN) grid, then
 * the global image's s*s tokens; the compressor sees the stitched grid only.
 */
export function imageSide(src: WeightSource, json: Record<string, any>, seed: number) {
  const D: number = json.mm_hidden_size;
  const s: number = json.vision_config.image_size / json.vision_config.patch_size;
  const N: number = json.resolution_ratio ?? 1;
  const pieces = Array.from({ length: N > 1 ? N * N + 1 : 1 }, (_, p) => seededFloats(s * s * D, seed * 100 + p, 2));
  let stitched = pieces[0];
  if (N > 1) {
    const S = s * N;
    stitched = new Float32Array(S * S * D);
    for (let k = 0; k < N * N; k++) {
      const [pi, pj] = [Math.floor(k / N), k % N];
      for (let r = 0; r < s; r++) {
        for (let c = 0; c < s; c++) stitched.set(pieces[k].subarray((r * s + c) * D, (r * s + c + 1) * D), ((pi * s + r) * S + pj * s + c) * D);
      }
    }
  }
  const imageFeatures = N > 1 ? concat(stitched, pieces[N * N]) : stitched;
  return { imageFeatures, compressed: refCompressor(src, json, stitched) };
}

export function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (out.set(p, offset), offset + p.length), 0);
  return out;
}
