import { f32ArrayToBf16, f32ArrayToF16 } from '@llava-mini/core';
import type { WritableTensor } from '@llava-mini/core/node';
import type { FloatDTypeName } from './options.js';
import { normals, streamSeed } from './random.js';
import { initKind, sinCosPosEmbed, VISION_PREFIX } from './shapes.js';

/** Spread of norm scales around 1 and of LayerNorm biases around 0: far enough from identity that a missing scale shows. */
export const NORM_STD = 0.1;

/**
 * The name a tensor's random stream is keyed by. CLIP tensors drop the LLaVA nesting so a standalone
 * CLIP folder (`vision_model.*`) written with the same seed holds exactly the same values as the
 * tower inside the LLaVA-Mini checkpoint, and tests can swap one for the other.
 */
export function streamName(name: string): string {
  return name.startsWith(VISION_PREFIX) ? name.slice(VISION_PREFIX.length) : name;
}

/** The values of one tensor in float64, from (seed, name, shape) alone. */
export function tensorValues(seed: number, name: string, shape: readonly number[], std: number): Float64Array {
  const n = shape.reduce((a, b) => a * b, 1);
  switch (initKind(name)) {
    case 'sincos': {
      const [rows, dim] = shape;
      const grid = Math.round(Math.sqrt(rows));
      return sinCosPosEmbed(grid, dim);
    }
    case 'norm-weight':
      return normals(streamSeed(seed, streamName(name)), n, 1, NORM_STD);
    case 'norm-bias':
      return normals(streamSeed(seed, streamName(name)), n, 0, NORM_STD);
    case 'normal':
      return normals(streamSeed(seed, streamName(name)), n, 0, std);
  }
}

function encode(values: Float64Array, dtype: FloatDTypeName): Float32Array | Uint16Array {
  // Every dtype rounds through float32 first, so an f16/bf16 checkpoint is the f32 one rounded.
  const f32 = Float32Array.from(values);
  if (dtype === 'float32') return f32;
  return dtype === 'float16' ? f32ArrayToF16(f32) : f32ArrayToBf16(f32);
}

/**
 * Tensors to hand to writeCheckpoint, sorted by name, each one's data a thunk so only one tensor's
 * values exist at a time however large the vocabulary.
 */
export function writableTensors(shapes: ReadonlyMap<string, number[]>, seed: number, std: number, dtypeOf: (name: string) => FloatDTypeName): WritableTensor[] {
  const names = [...shapes.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return names.map((name) => {
    const shape = shapes.get(name)!;
    const dtype = dtypeOf(name);
    return { name, dtype, shape, data: () => encode(tensorValues(seed, name, shape, std), dtype) };
  });
}
