// How the reference reads weights. It decodes 16-bit floats itself and names the shape of a weight
// source structurally, so it shares no code with the runtime it checks: a checkpoint reader from
// @llava-mini/core fits `RefWeights` without the reference importing it.

/** A stored tensor: dtype name, row-major dims, and the raw elements (16-bit floats as their bits). */
export interface RefTensor {
  readonly dtype: string;
  readonly dims: readonly number[];
  readonly data: ArrayLike<number | bigint>;
}

/** Named tensors, as a checkpoint holds them. */
export interface RefWeights {
  has(name: string): boolean;
  read(name: string): RefTensor;
}

const word = new Uint32Array(1);
const single = new Float32Array(word.buffer);

/** IEEE half precision: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits. */
function halfToNumber(bits: number): number {
  const sign = bits >> 15 ? -1 : 1;
  const exponent = (bits >> 10) & 31;
  const fraction = bits & 1023;
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  // Exponent 0 holds zero and the subnormals: no implicit leading 1.
  return exponent === 0 ? sign * fraction * 2 ** -24 : sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** bfloat16 is the top half of a float32. */
function brainToNumber(bits: number): number {
  word[0] = bits << 16;
  return single[0];
}

/** A tensor's values as float32, whatever float type it is stored in. */
export function floats(t: RefTensor): Float32Array {
  // float32 comes back as stored (not copied): the reference only reads its weights.
  if (t.dtype === 'float32' && t.data instanceof Float32Array) return t.data;
  const n = t.data.length;
  const out = new Float32Array(n);
  const raw = t.data as ArrayLike<number>;
  if (t.dtype === 'float32') out.set(raw);
  else if (t.dtype === 'float16') for (let i = 0; i < n; i++) out[i] = halfToNumber(raw[i]);
  else if (t.dtype === 'bfloat16') for (let i = 0; i < n; i++) out[i] = brainToNumber(raw[i]);
  else throw new Error(`the reference reads float weights only, got ${t.dtype}`);
  return out;
}

/** Weights whose every read is float32, converted once per tensor (the reference re-reads weights often). */
export interface Float32Weights extends RefWeights {
  read(name: string): { readonly dtype: 'float32'; readonly dims: readonly number[]; readonly data: Float32Array };
  float32(name: string): Float32Array;
}

export function cachedFloat32(src: RefWeights): Float32Weights {
  const cache = new Map<string, { dtype: 'float32'; dims: readonly number[]; data: Float32Array }>();
  const read = (name: string) => {
    let t = cache.get(name);
    if (!t) {
      const raw = src.read(name);
      t = { dtype: 'float32', dims: raw.dims, data: floats(raw) };
      cache.set(name, t);
    }
    return t;
  };
  return { has: (n) => src.has(n), read, float32: (n) => read(n).data };
}
