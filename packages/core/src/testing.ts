// Test helpers shared by every package's tests (entry '@llava-mini/core/testing', Node only).
import type { Backend, Device } from './backend.js';
import { nodeBackend } from './backends/node.js';
import { webBackend } from './backends/web.js';
import { mulberry32 } from './random.js';

/** The backends every test runs on here: onnxruntime-node CPU and onnxruntime-web WASM. */
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

/** Deterministic uniform floats in [-scale, scale). */
export function seededFloats(n: number, seed: number, scale = 1): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 2 - 1) * scale;
  return out;
}
