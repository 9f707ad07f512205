// Node entry of @llava-mini/pipeline: LlavaMini.fromPretrained(dir), the converter, video decoding.
import type { NodeInput } from './inputs.js';
import { LlavaMini as LlavaMiniBase } from './llava-mini.js';
import { type LoadOptions, loadParts } from './load.js';

export * from './index.js';
export { convertCheckpoint, partialDir, removeStalePartials, type ConvertOptions } from './convert.js';
export { ensureTinyModel } from './demo.js';
export { DEFAULT_MODEL, defaultModelDir } from './default-model.js';
export { hubSettings, type HubSettings } from './hub/settings.js';
export { type HubId } from './hub/id.js';
export { convertedPath, fetchPretrained, localModel, parseHubId, type PretrainedOptions } from './hub/pretrained.js';
export { fetchModelUrl, urlModelPath, type UrlModelOptions } from './hub/url-model.js';
export { listCache, removeFromCache, type CacheEntry } from './hub/cache.js';
export { openHfCheckpoint, type HfCheckpoint } from './checkpoint.js';
export { IN_MEMORY_LIMIT_BYTES, loadParts, type LoadOptions, type NodeDeviceRequest } from './load.js';
export { dataUrlBytes, resolveNodeInput, VIDEO_EXTENSIONS, type ImageInput, type NodeInput, type VideoFramesInput, type VideoInput } from './inputs.js';
export { decodeFrames, liveVideoFrames, probeVideo, type LiveVideoOptions, type RgbFrame, type VideoInfo } from '@llava-mini/encoder/node';

/** LLaVA-Mini in Node: `LlavaMini.fromPretrained(dir)`, inputs typed as NodeInput. */
export class LlavaMini extends LlavaMiniBase<NodeInput> {
  /**
   * Load a model folder: one written by `llava-mini convert` (manifest.json), or a small Hugging
   * Face LLaVA-Mini checkpoint, converted in memory; or a hub id, `org/name[@revision]`, downloaded
   * to the Hugging Face cache, converted once for `dtype` and the device, and cached.
   *
   *   const model = await LlavaMini.fromPretrained('./llava-mini-tiny', { device: 'cpu' });
   *   const { text } = await model.ask('photo.jpg', 'What is in this picture?').done();
   */
  static async fromPretrained(model: string, options: LoadOptions = {}): Promise<LlavaMini> {
    return new LlavaMini(await loadParts(model, options));
  }
}
