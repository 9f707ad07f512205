import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { type Backend, type Device, type WeightSource } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { writeTinyCheckpoint, type TinyOptions } from '@llava-mini/tiny';
import { cachedFloat32 } from '@llava-mini/reference';
import { buildEmbeddingsGraph, buildLlamaGraph, type LlamaGraphOptions, LlamaModel, type LlamaModelOptions, readLlamaConfig, type LlamaConfig } from '../src/index.js';

const roots: string[] = [];

/** A fresh temp folder, removed when the test file ends. */
export function tempDir(label = 'llm'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `llava-mini-${label}-`));
  roots.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of roots.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

export interface TinyLlm {
  dir: string;
  json: Record<string, any>;
  config: LlamaConfig;
  src: WeightSource & { float32(name: string): Float32Array };
}

/** A tiny LLM-only checkpoint (no vision tensors) and its parsed config. */
export async function tinyLlm(options: TinyOptions = {}): Promise<TinyLlm> {
  const dir = tempDir();
  const ck = await writeTinyCheckpoint(dir, { includeVision: false, ...options });
  const json = ck.config as Record<string, any>;
  return { dir, json, config: readLlamaConfig(json), src: cachedFloat32(Checkpoint.open(dir)) };
}

/** Build both graphs in memory and open them as a LlamaModel. */
export async function openModel(
  tiny: TinyLlm,
  backend: Backend,
  device: Device,
  graph: LlamaGraphOptions = {},
  options: Partial<LlamaModelOptions> = {},
): Promise<LlamaModel> {
  const model = buildLlamaGraph(tiny.src, tiny.config, { maxPositions: 512, ...graph }).toBytes();
  const embeddings = buildEmbeddingsGraph(tiny.src, tiny.config, graph).toBytes();
  return LlamaModel.create(backend, { model, embeddings }, { config: tiny.config, device, maxSequence: 256, ...options });
}
