import type { WeightSource } from './backend.js';
import { CheckpointMismatchError } from './errors.js';
import type { Tensor } from './tensor.js';

/**
 * Read a checkpoint tensor and check it has the shape the config implies. `why` names the config
 * values the shape comes from, so the error points at the disagreement.
 */
export function readWeight(src: WeightSource, name: string, shape: readonly number[], why = 'the config'): Tensor {
  if (!src.has(name)) throw new CheckpointMismatchError(`checkpoint has no tensor '${name}' (expected shape [${shape.join(', ')}] from ${why})`);
  const t = src.read(name);
  if (t.dims.length !== shape.length || t.dims.some((d, i) => d !== shape[i])) {
    throw new CheckpointMismatchError(`checkpoint tensor '${name}' has shape [${t.dims.join(', ')}], but ${why} implies [${shape.join(', ')}]`);
  }
  return t;
}
