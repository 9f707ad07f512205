// Node helpers of @llava-mini/llm: read tokenizer files from a folder, write the backbone's graphs to disk.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, ModelFilesError, type WeightSource } from '@llava-mini/core';
import { ExternalDataWriter, saveModel } from '@llava-mini/core/node';
import type { LlamaConfig } from './config.js';
import { buildEmbeddingsGraph } from './embedding.js';
import { buildLlamaGraph, type LlamaGraphOptions } from './graph.js';
import { LLAMA_FILES } from './io.js';
import type { LlamaModelFiles } from './model.js';
import { Tokenizer } from './tokenizer.js';

export * from './index.js';

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelFilesError(file, `cannot be read: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * The tokenizer of a Hugging Face folder: tokenizer.json, tokenizer_config.json and, if present,
 * generation_config.json (stop ids).
 */
export function loadTokenizer(dir: string, options: { chatTemplate?: string } = {}): Tokenizer {
  const generation = path.join(dir, 'generation_config.json');
  return Tokenizer.fromFiles({
    tokenizer: readText(path.join(dir, 'tokenizer.json')),
    tokenizerConfig: readText(path.join(dir, 'tokenizer_config.json')),
    generationConfig: fs.existsSync(generation) ? readText(generation) : undefined,
    chatTemplate: options.chatTemplate,
  });
}

/** Paths of the two graphs writeLlamaModel writes (each with its `.data` file of weights beside it). */
export function llamaModelPaths(dir: string): { model: string; embeddings: string } {
  return { model: path.join(dir, LLAMA_FILES.model), embeddings: path.join(dir, LLAMA_FILES.embeddings) };
}

/**
 * Build the backbone and embedding graphs from a checkpoint and write them to `dir` (weights as
 * external data, so an 8B model stays under protobuf's 2 GB cap). Returns paths for LlamaModel.create.
 */
export function writeLlamaModel(dir: string, src: WeightSource, config: LlamaConfig, options: Omit<LlamaGraphOptions, 'weights'> = {}): LlamaModelFiles & { model: string; embeddings: string } {
  fs.mkdirSync(dir, { recursive: true });
  const paths = llamaModelPaths(dir);
  const build = [
    [paths.model, buildLlamaGraph],
    [paths.embeddings, buildEmbeddingsGraph],
  ] as const;
  for (const [file, builder] of build) {
    const weights = new ExternalDataWriter(file);
    let graph;
    try {
      graph = builder(src, config, { ...options, weights });
    } catch (err) {
      weights.abort();
      throw err;
    }
    saveModel(graph, file, weights);
  }
  return paths;
}
