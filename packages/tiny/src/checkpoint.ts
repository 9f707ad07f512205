import * as fs from 'node:fs';
import * as path from 'node:path';
import { INDEX_FILE, makeDirs, writeCheckpoint, writeFileAtomic } from '@llava-mini/core/node';
import { clipConfig, clipPreprocessorConfig, FLOAT_KEYS, generationConfig, llavaMiniConfig, visionConfig } from './config.js';
import { pyJson } from './json.js';
import { resolveOptions, type TinyOptions } from './options.js';
import { clipTensorShapes, tinyTensorShapes, VISION_PREFIX } from './shapes.js';
import { copyTokenizer, writeTinyTokenizer } from './tokenizer.js';
import { writableTensors } from './weights.js';

/**
 * Remove weights an earlier run left in `dir`: a single file left beside a new index (or the reverse)
 * would make readers see the stale tensors.
 */
function removeOldWeights(dir: string): void {
  for (const file of fs.readdirSync(dir)) {
    if (/^model(?:-\d{5}-of-\d{5})?\.safetensors$/.test(file) || file === INDEX_FILE) fs.rmSync(path.join(dir, file), { force: true });
  }
}

export interface TinyCheckpoint {
  dir: string;
  /** The contents of the written config.json. */
  config: Record<string, unknown>;
  /** Every tensor written, sorted by name. */
  tensorNames: string[];
  vocabSize: number;
}

export interface TinyClip {
  dir: string;
  /** The contents of the written config.json. */
  config: Record<string, unknown>;
  /** Every tensor written (`vision_model.*`), sorted by name. */
  tensorNames: string[];
}

/**
 * Write a seeded random-weight LLaVA-Mini checkpoint folder in the Hugging Face layout of
 * `ICTNLP/llava-mini-llama-3.1-8b`: config.json, generation_config.json, model.safetensors (or shards
 * and model.safetensors.index.json), tokenizer.json, tokenizer_config.json, special_tokens_map.json.
 * Options are checked before anything is written.
 */
export async function writeTinyCheckpoint(dir: string, options: TinyOptions = {}): Promise<TinyCheckpoint> {
  const o = resolveOptions(options);
  makeDirs(dir);
  removeOldWeights(dir);
  // The tokenizer comes first: its size fixes vocab_size, and with it the embedding shapes.
  const ids = o.tokenizer === 'tiny' ? writeTinyTokenizer(dir) : copyTokenizer(o.tokenizer.dir, dir);

  const config = llavaMiniConfig(o, ids);
  const shapes = tinyTensorShapes(config, { includeVision: o.includeVision });
  const tensors = writableTensors(shapes, o.seed, o.std, (name) => (name.startsWith(VISION_PREFIX) ? o.visionDtype : o.dtype));
  writeCheckpoint(dir, tensors, { maxShardBytes: o.maxShardBytes ?? Number.MAX_SAFE_INTEGER });

  writeFileAtomic(path.join(dir, 'config.json'), pyJson(config, { floatKeys: FLOAT_KEYS }));
  writeFileAtomic(path.join(dir, 'generation_config.json'), pyJson(generationConfig(ids), { floatKeys: FLOAT_KEYS }));
  return { dir, config, tensorNames: tensors.map((t) => t.name), vocabSize: ids.vocabSize };
}

/**
 * Write a standalone Hugging Face CLIP vision folder (config.json with model_type
 * `clip_vision_model`, preprocessor_config.json, model.safetensors with `vision_model.*` names).
 * Reads only `seed`, `std`, `maxShardBytes`, `imageSize`, `patchSize` and the `vision*` options, so
 * the options of a tiny checkpoint can be passed as they are; with the same seed its tensors equal
 * the vision tower inside that checkpoint value for value.
 */
export async function writeTinyClip(dir: string, options: TinyOptions = {}): Promise<TinyClip> {
  const o = resolveOptions(options);
  makeDirs(dir);
  removeOldWeights(dir);
  const shapes = clipTensorShapes(visionConfig(o), 'vision_model.');
  const tensors = writableTensors(shapes, o.seed, o.std, () => o.visionDtype);
  writeCheckpoint(dir, tensors, { maxShardBytes: o.maxShardBytes ?? Number.MAX_SAFE_INTEGER });
  const config = clipConfig(o);
  writeFileAtomic(path.join(dir, 'config.json'), pyJson(config, { floatKeys: FLOAT_KEYS }));
  writeFileAtomic(path.join(dir, 'preprocessor_config.json'), pyJson(clipPreprocessorConfig(o), { floatKeys: FLOAT_KEYS }));
  return { dir, config, tensorNames: tensors.map((t) => t.name) };
}
