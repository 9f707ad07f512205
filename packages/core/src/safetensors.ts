import { SafetensorsError } from './errors.js';
import { BYTES_PER_ELEMENT, type DType, numel } from './tensor.js';

/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON mapping each
 * tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data section),
 * an optional "__metadata__" string map, then the data section.
 */

export const SAFETENSORS_DTYPES: Record<string, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const DTYPE_TO_SAFETENSORS = Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])) as Record<DType, string>;

/** Headers above this are refused before parsing (the format's own reference reader caps at 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte offset of the tensor's data from the start of the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  /** Byte offset where the data section starts (8 + header length). */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** Read the header length from the first 8 bytes, checking it against the file size. */
export function headerLength(first8: Uint8Array, file: string, fileSize: number): number {
  if (fileSize < 8 || first8.length < 8) throw new SafetensorsError(file, `file is ${fileSize} bytes, too short for a safetensors header`);
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n < 2n || n > BigInt(MAX_HEADER_BYTES) || n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(file, `bad header length ${n} (file size ${fileSize})`);
  }
  return Number(n);
}

/** Parse and validate the JSON header. `fileSize` lets truncated files be caught here, before any read. */
export function parseHeader(json: Uint8Array, file: string, fileSize: number): SafetensorsHeader {
  const dataStart = 8 + json.length;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SafetensorsError(file, 'header is not a JSON object');
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = SAFETENSORS_DTYPES[String(e?.dtype)];
    if (!dtype) throw new SafetensorsError(file, `tensor '${name}' has unknown or unsupported dtype '${String(e?.dtype)}'`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new SafetensorsError(file, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    const expected = numel(shape) * BYTES_PER_ELEMENT[dtype];
    if (end < begin || end - begin !== expected) {
      throw new SafetensorsError(file, `tensor '${name}' has data_offsets [${begin}, ${end}] but its ${dtype} shape [${shape.join(', ')}] needs ${expected} bytes`);
    }
    if (end > dataSize) {
      throw new SafetensorsError(file, `tensor '${name}' ends at byte ${end} of the data section, which has only ${dataSize} bytes (truncated file or out-of-range offsets)`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin });
  }
  return { dataStart, tensors, metadata };
}

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: readonly number[];
}

/**
 * Build a header for tensors written back to back in the given order. The header is padded with
 * spaces to a multiple of 8 bytes so tensor data stays aligned, as the reference writer does.
 */
export function buildHeader(entries: readonly TensorEntry[], metadata?: Record<string, string>): { header: Uint8Array; offsets: number[] } {
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) json.__metadata__ = metadata;
  const offsets: number[] = [];
  let pos = 0;
  for (const e of entries) {
    const size = numel(e.shape) * BYTES_PER_ELEMENT[e.dtype];
    json[e.name] = { dtype: DTYPE_TO_SAFETENSORS[e.dtype], shape: [...e.shape], data_offsets: [pos, pos + size] };
    offsets.push(pos);
    pos += size;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - ((new TextEncoder().encode(text).length + 8) % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, offsets };
}
