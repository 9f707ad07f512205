import type { Tensor } from '../src/index.js';

export { maxAbsDiff, seededFloats, testBackends as backends } from '../src/testing.js';

export function f32(t: Tensor): Float32Array {
  return t.data as Float32Array;
}
