import * as fs from 'node:fs';
import * as path from 'node:path';
import { HubError, type ProgressCallback } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { readJson } from '../checkpoint.js';
import { convertCheckpoint } from '../convert.js';
import { checkDtype, checkTarget, type DtypeName, type Target } from '../formats.js';
import { VISION_MODEL_PREFIX } from '../layout.js';
import { MANIFEST_FILE } from '../manifest.js';
import { MODEL_CARD_FILE } from '../model-card.js';
import { formatHubId, type HubId, matchHubId } from './id.js';
import { withLock } from './lock.js';
import { hubSettings, type HubSettings } from './settings.js';
import { checkFreeSpace, RepoCache } from './snapshot.js';
import { fetchModelUrl, isModelUrl } from './url-model.js';

export interface PretrainedOptions {
  /** The converted weights' dtype (default fp32). */
  dtype?: DtypeName;
  /** The device the conversion is made for (default cpu). */
  target?: Target;
  /** A CLIP folder on disk instead of the vision tower the config names. */
  clipDir?: string;
  onProgress?: ProgressCallback;
  /** Default: read from the environment (HF_ENDPOINT, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE, ...). */
  settings?: HubSettings;
}

// What a LLaVA-Mini checkpoint, a CLIP folder or a converted folder needs: configs, tokenizer files,
// safetensors weights, ONNX graphs and their external data in all its chunks (not the .bin, .h5 or .msgpack copies
// some repositories also hold), and the model card (its license goes into the converted folder's).
const WANTED = (file: string) => !file.includes('/') && (/\.(json|safetensors|onnx|data(\.\d+)?)$/.test(file) || file === MODEL_CARD_FILE);

/** Bytes a conversion writes per byte of bf16/fp16 source weights, by dtype, with room to spare. */
const OUTPUT_PER_SOURCE_BYTE: Record<DtypeName, number> = { fp32: 2.1, fp16: 1.1, q8: 0.6, q4: 0.35 };

/** `org/name[@revision]` as a hub id, unless a file or folder of that name exists here (as in transformers). */
export function parseHubId(spec: string): HubId | undefined {
  return fs.existsSync(spec) ? undefined : matchHubId(spec);
}

/**
 * The local folder a model name stands for: a path as it is, a hub id's converted folder
 * (`fetchPretrained`), or a URL's downloaded converted folder (`fetchModelUrl`).
 */
export async function localModel(spec: string, options: PretrainedOptions = {}): Promise<string> {
  if (isModelUrl(spec)) return fetchModelUrl(spec, options);
  const hub = parseHubId(spec);
  return hub ? fetchPretrained(hub, options) : spec;
}

/** The converted folder's place in the cache: by repository, commit, dtype and target. */
export function convertedPath(settings: HubSettings, repo: string, commit: string, dtype: DtypeName, target: Target): string {
  return path.join(settings.convertedDir, repo.replace('/', '--'), commit, `${dtype}-${target}`);
}

/**
 * A hub model, converted and cached: `org/name[@revision]` resolved to a commit, its files (and the
 * CLIP tower its config names, when its weights lack one) downloaded to the hub cache, converted
 * once for (dtype, target), and the converted folder returned; a repository that holds a converted
 * folder is returned as downloaded. A later call with the cache complete
 * asks the hub only which commit the revision is (nothing, offline) and fetches no file.
 */
export async function fetchPretrained(id: HubId, options: PretrainedOptions = {}): Promise<string> {
  const settings = options.settings ?? hubSettings();
  const dtype = checkDtype(options.dtype ?? 'fp32');
  const target = checkTarget(options.target ?? 'cpu');
  const model = new RepoCache(id, settings);
  const commit = await model.commit();
  const out = convertedPath(settings, id.repo, commit, dtype, target);
  if (fs.existsSync(path.join(out, MANIFEST_FILE))) return out;

  const dir = await model.fetch(commit, WANTED, options.onProgress);
  // A repository holding a converted folder (`llava-mini convert`'s output, uploaded as it is) is
  // loaded from the snapshot: its manifest's dtype and target are checked when it loads.
  if (fs.existsSync(path.join(dir, MANIFEST_FILE))) return dir;
  const clipDir = options.clipDir ?? (hasVisionTower(dir) ? undefined : await fetchVisionTower(dir, settings, options.onProgress));
  const source = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  checkFreeSpace(id, settings.convertedDir, source * OUTPUT_PER_SOURCE_BYTE[dtype]);
  // One conversion per folder; one that waited finds the folder made.
  await withLock(`${out}.lock`, async () => {
    if (!fs.existsSync(path.join(out, MANIFEST_FILE))) {
      await convertCheckpoint(dir, out, { dtype, target, clipDir, onProgress: options.onProgress, source: { name: id.repo, commit, hub: true } });
    }
  });
  return out;
}

function hasVisionTower(dir: string): boolean {
  const weights = Checkpoint.open(dir);
  try {
    return weights.has(`${VISION_MODEL_PREFIX}embeddings.class_embedding`);
  } finally {
    weights.close();
  }
}

/** The vision tower the release's config names (`mm_vision_tower`), fetched as the model was. */
async function fetchVisionTower(dir: string, settings: HubSettings, onProgress?: ProgressCallback): Promise<string> {
  const tower = readJson(path.join(dir, 'config.json')).mm_vision_tower;
  const id = typeof tower === 'string' ? matchHubId(tower) : undefined;
  if (!id) throw new HubError(dir, `its weights have no CLIP vision tower and config.json names none on the hub (mm_vision_tower: ${JSON.stringify(tower)}); pass a CLIP folder (--clip DIR)`);
  const cache = new RepoCache(id, settings);
  const clip = await cache.fetch(await cache.commit(), WANTED, onProgress);
  if (!fs.readdirSync(clip).some((f) => f.endsWith('.safetensors'))) {
    throw new HubError(formatHubId(id), 'holds no safetensors weights for the vision tower; pass a CLIP folder (--clip DIR)');
  }
  return clip;
}
