import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, ModelFilesError, type ProgressCallback, UnsupportedConfigError, type Tensor, type WeightSource } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { checkLayout, VISION_MODEL_PREFIX as LLAVA_VISION_PREFIX } from './layout.js';
import { type ModelConfig, readModelConfig } from './model-config.js';

export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'] as const;

/**
 * A config value the runtime does not take is named with the file it came from: the stage packages
 * that check it know the key but not the file (a checkpoint's config.json, a model's manifest.json).
 */
export function inConfigFile(err: unknown, file: string): unknown {
  if (err instanceof UnsupportedConfigError && !err.message.startsWith(`${file}: `)) err.message = `${file}: ${err.message}`;
  return err;
}

export function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelFilesError(file, `cannot be read: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelFilesError(file, `is not valid JSON: ${errorMessage(err)}`, { cause: err });
  }
}

/** A Hugging Face LLaVA-Mini folder as published: config, weights (maybe without CLIP), tokenizer. */
export interface HfCheckpoint {
  dir: string;
  /** config.json, read; with a separate CLIP folder, that folder's config becomes its `vision_config`. */
  config: ModelConfig;
  generationConfig?: Record<string, unknown>;
  /** All weights, CLIP included (from the separate CLIP folder when the checkpoint lacks them). */
  weights: WeightSource & { names: string[]; close(): void };
  /** Tokenizer files present in the folder. */
  tokenizerFiles: string[];
}

/**
 * Open a checkpoint folder and check it is one this runtime can convert, before any heavy work.
 * `clipDir` names a standalone CLIP vision checkpoint (`vision_model.*` tensors) for checkpoints
 * whose own copy of the tower is missing.
 */
export function openHfCheckpoint(dir: string, clipDir?: string): HfCheckpoint {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new ModelFilesError(dir, 'is not a folder');
  const configFile = path.join(dir, 'config.json');
  const json = readJson(configFile);
  if (json.model_type !== 'llava_mini_llama') {
    throw inConfigFile(new UnsupportedConfigError('model_type', `expected "llava_mini_llama" (a LLaVA-Mini checkpoint), got ${JSON.stringify(json.model_type)}`), configFile);
  }
  const genPath = path.join(dir, 'generation_config.json');
  const generationConfig = fs.existsSync(genPath) ? readJson(genPath) : undefined;
  for (const required of ['tokenizer.json', 'tokenizer_config.json']) {
    if (!fs.existsSync(path.join(dir, required))) throw new ModelFilesError(path.join(dir, required), 'is missing (the tokenizer is part of the checkpoint)');
  }
  const tokenizerFiles = TOKENIZER_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  const main = Checkpoint.open(dir);
  // The config is read once the CLIP folder's part is in it; then the weights must be what it says.
  const checked = (withClip: Record<string, unknown>, weights: HfCheckpoint['weights']): HfCheckpoint => {
    try {
      const config = readModelConfig(withClip);
      checkLayout(config, weights.names, `checkpoint ${dir}`);
      return { dir, config, generationConfig, weights, tokenizerFiles };
    } catch (err) {
      weights.close();
      throw inConfigFile(err, configFile);
    }
  };
  if (main.has(`${LLAVA_VISION_PREFIX}embeddings.class_embedding`)) return checked(json, main);
  if (!clipDir) {
    main.close();
    throw new ModelFilesError(dir, `has no CLIP vision tower (${LLAVA_VISION_PREFIX}*): name a CLIP checkpoint folder (--clip DIR)`);
  }
  let clipConfig: Record<string, unknown>;
  let clip: Checkpoint;
  try {
    clipConfig = readJson(path.join(clipDir, 'config.json'));
    clip = Checkpoint.open(clipDir);
  } catch (err) {
    main.close();
    throw err;
  }
  const visionConfig = (clipConfig.vision_config as Record<string, unknown> | undefined) ?? clipConfig;
  return checked({ ...json, vision_config: visionConfig }, merged(main, clip));
}

/** The main checkpoint's tensors, with the CLIP folder's `vision_model.*` under LLaVA-Mini's prefix. */
function merged(main: Checkpoint, clip: Checkpoint): HfCheckpoint['weights'] {
  const mapName = (name: string) => (name.startsWith(LLAVA_VISION_PREFIX) ? name.slice('model.vision_tower.vision_tower.'.length) : undefined);
  const clipNames = clip.names.filter((n) => n.startsWith('vision_model.')).map((n) => `model.vision_tower.vision_tower.${n}`);
  return {
    names: [...main.names, ...clipNames],
    has: (name) => {
      const c = mapName(name);
      return c ? clip.has(c) : main.has(name);
    },
    read: (name): Tensor => {
      const c = mapName(name);
      return c ? clip.read(c) : main.read(name);
    },
    close: () => {
      main.close();
      clip.close();
    },
  };
}

/** A weight source that reports each tensor read as progress of `task`. */
export function withProgress(src: WeightSource, task: string, total: number, onProgress?: ProgressCallback): WeightSource {
  if (!onProgress) return src;
  let done = 0;
  return {
    has: (n) => src.has(n),
    read: (n) => {
      const t = src.read(n);
      onProgress({ task, item: n, done: ++done, total: Math.max(total, done), unit: 'tensors' });
      return t;
    },
  };
}
