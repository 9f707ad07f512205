import { InvalidOptionError } from './errors.js';

/**
 * The element types the stages exchange. `float16` and `bfloat16` hold raw bits in a Uint16Array,
 * which is what onnxruntime's JS API takes for float16 on every backend.
 */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';

export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float16' | 'bfloat16'
    ? Uint16Array
    : D extends 'int8'
      ? Int8Array
      : D extends 'uint8' | 'bool'
        ? Uint8Array
        : D extends 'int32'
          ? Int32Array
          : D extends 'int64'
            ? BigInt64Array
            : never;

export type TensorData = Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

/** A dense row-major tensor on the host. Backends convert to and from their own tensor types. */
export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: TypedArrayFor<D>;
}

/**
 * A tensor that stays in the device's memory where a run left it (a WebGPU buffer of
 * onnxruntime-web): fed back into runs as it is, never read on the host unless downloaded.
 * `dispose()` frees the device memory; a disposed tensor must not be fed again.
 */
export interface DeviceTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly location: 'gpu-buffer';
  /** Its elements, copied to the host. */
  download(): Promise<TypedArrayFor<D>>;
  dispose(): void;
}

export function isDeviceTensor(t: Tensor | DeviceTensor): t is DeviceTensor {
  return 'location' in t;
}

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  uint8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
};

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

const CONSTRUCTORS = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
  int32: Int32Array,
  int64: BigInt64Array,
} as const;

/** Make a tensor, checking that the data length matches the shape. */
export function tensor<D extends DType>(dtype: D, dims: readonly number[], data?: TypedArrayFor<D>): Tensor<D> {
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new InvalidOptionError(`tensor dims must be non-negative integers, got [${dims.join(', ')}]`);
  }
  const n = numel(dims);
  const buf = (data ?? new CONSTRUCTORS[dtype](n)) as TypedArrayFor<D>;
  if (!(buf instanceof CONSTRUCTORS[dtype])) {
    throw new InvalidOptionError(`a ${dtype} tensor needs a ${CONSTRUCTORS[dtype].name}, got ${(buf as object).constructor.name}`);
  }
  if (buf.length !== n) {
    throw new InvalidOptionError(`tensor of shape [${dims.join(', ')}] needs ${n} elements, got ${buf.length}`);
  }
  return { dtype, dims: [...dims], data: buf };
}

/** View the tensor's elements as bytes (little-endian, as ONNX raw_data and safetensors store them). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}
