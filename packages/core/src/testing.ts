// Test helpers shared by every package's tests (entry '@llava-mini/core/testing', Node only).
import type { Backend, Device } from './backend.js';
import { nodeBackend } from './backends/node.js';
import { webBackend } from './backends/web.js';

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
