import { type Tensor, toFloat32, type WeightSource } from '@llava-mini/core';

export { maxAbsDiff, seededFloats, testBackends } from '@llava-mini/core/testing';

/** A weight source that converts each tensor to float32 once (reference passes re-read weights often). */
export function cachedFloat32(src: WeightSource): WeightSource & { float32(name: string): Float32Array } {
  const cache = new Map<string, Tensor>();
  const read = (name: string): Tensor => {
    let t = cache.get(name);
    if (!t) {
      const raw = src.read(name);
      t = { dtype: 'float32', dims: raw.dims, data: toFloat32(raw) };
      cache.set(name, t);
    }
    return t;
  };
  return { has: (n) => src.has(n), read, float32: (n) => read(n).data as Float32Array };
}
