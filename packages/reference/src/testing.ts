import { type Backend, type Device, type Tensor, toFloat32, type WeightSource } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { webBackend } from '@llava-mini/core/web';

/** The backends every stage test runs on here: onnxruntime-node CPU and onnxruntime-web WASM. */
export async function testBackends(): Promise<{ label: string; backend: Backend; device: Device }[]> {
  return [
    { label: 'node-cpu', backend: await nodeBackend(), device: 'cpu' },
    { label: 'web-wasm', backend: await webBackend(), device: 'wasm' },
  ];
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Deterministic uniform floats in [-scale, scale) (mulberry32). */
export function seededFloats(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

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
