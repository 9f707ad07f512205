// The LLM stage bench's model (a seeded Llama-3-shaped checkpoint) and its graphs per weight format,
// written once under .cache/bench/llm and shared by llm.ts and llamacpp.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '@llava-mini/core/node';
import { type LlamaConfig, llamaModelPaths, readLlamaConfig, writeLlamaModel } from '@llava-mini/llm/node';
import { CACHE, fmt, log, now } from './common.js';
import { MID, seededCheckpoint } from './shapes.js';

export const LLM_CACHE = path.join(CACHE, 'llm');

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
  const dir = await seededCheckpoint(path.join(LLM_CACHE, 'mid-checkpoint'), MID);
  return { dir, config: readLlamaConfig(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))) };
}

/** Our graphs of the checkpoint in `name`'s format for contexts up to `maxSequence` (built once). */
export function llmGraphs(checkpoint: string, config: LlamaConfig, name: FormatName, maxSequence: number): { model: string; embeddings: string } {
  const q = (FORMAT_OPTIONS[name] as { quant?: { accuracyLevel?: number; symmetric?: boolean } }).quant;
  const dir = path.join(LLM_CACHE, `mid-${name}${q ? `-acc${q.accuracyLevel ?? 0}${q.symmetric ? '-sym' : ''}` : ''}-${maxSequence}-v3p2`); // v3: the manifest version of the graph format; p2: with the prompt kernel and its input
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
