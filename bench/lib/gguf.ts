/**
 * A GGUF (version 3) writer for the llama.cpp peer: metadata, tensor infos, then tensor data
 * aligned to 32 bytes, streamed one tensor at a time (so an 8B backbone never sits in memory).
 *
 * Layout (ggml's gguf.cpp): "GGUF", u32 version, u64 tensor count, u64 metadata count; each
 * metadata entry is a string key, a u32 value type and the value; each tensor info is a string
 * name, u32 dimension count, u64 dims (ne[0] first: the contiguous axis), u32 ggml type and a u64
 * offset into the data section. Strings are a u64 length and UTF-8 bytes; everything little-endian.
 *
 * Quantized types follow ggml's reference quantizers (ggml-quants.c, `quantize_row_*_ref`):
 *   Q8_0: blocks of 32, fp16 d = max|x| / 127, int8 q = round(x / d)                 34 bytes/block
 *   Q4_0: blocks of 32, fp16 d = x_m / -8 (x_m: the value of largest magnitude),
 *         q = min(15, trunc(x / d + 8.5)); byte j holds elements j (low) and j + 16 (high)  18 bytes
 * Both are symmetric (no zero point), where MatMulNBits' blocks (core/src/quant.ts) carry one.
 */
import * as fs from 'node:fs';
import { f32ArrayToF16 } from '@llava-mini/core';

export type GgmlType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0';
const GGML_TYPE_ID: Record<GgmlType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 };
const QK = 32; // elements per Q8_0 / Q4_0 block
const ALIGNMENT = 32;

/** Bytes a tensor of `n` elements takes in `type` (`n` a multiple of 32 for the block types). */
export function ggmlBytes(type: GgmlType, n: number): number {
  if (type === 'F32') return 4 * n;
  if (type === 'F16') return 2 * n;
  if (n % QK !== 0) throw new Error(`${type} needs a multiple of ${QK} elements per row, got ${n}`);
  return (n / QK) * (type === 'Q8_0' ? 2 + QK : 2 + QK / 2);
}

/** One value of GGUF metadata (the GGUF value types this writer needs). */
export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]' | 'f32[]'; value: ArrayLike<number> };

/** Metadata values by type, so a table of them reads as names and values. */
export const u32 = (value: number): GgufValue => ({ type: 'u32', value });
export const f32 = (value: number): GgufValue => ({ type: 'f32', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] (the contiguous axis, a Hugging Face weight's last dim) first. */
  dims: number[];
  type: GgmlType;
  /** The values in row-major order of the reversed dims (a Hugging Face tensor's own order); called once, while writing. */
  data: () => Float32Array;
}

/** Bytes of the little-endian header, grown as it is written. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.room(4);
    this.length = this.buf.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.room(4);
    this.length = this.buf.writeInt32LE(v, this.length);
  }
  f32(v: number): void {
    this.room(4);
    this.length = this.buf.writeFloatLE(v, this.length);
  }
  u64(v: number): void {
    this.room(8);
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length);
  }
  u8(v: number): void {
    this.room(1);
    this.length = this.buf.writeUInt8(v, this.length);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.room(bytes.length);
    this.length += bytes.copy(this.buf, this.length);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.room(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
    case 'i32':
    case 'f32':
      w.u32(VALUE_TYPE[v.type]);
      w[v.type](v.value);
      return;
    case 'bool':
      w.u32(VALUE_TYPE.bool);
      w.u8(v.value ? 1 : 0);
      return;
    case 'string':
      w.u32(VALUE_TYPE.string);
      w.string(v.value);
      return;
    case 'string[]':
      w.u32(VALUE_TYPE.array);
      w.u32(VALUE_TYPE.string);
      w.u64(v.value.length);
      for (const s of v.value) w.string(s);
      return;
    case 'i32[]':
    case 'f32[]': {
      const elem = v.type === 'i32[]' ? 'i32' : 'f32';
      w.u32(VALUE_TYPE.array);
      w.u32(VALUE_TYPE[elem]);
      w.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) w[elem](v.value[i]);
    }
  }
}

/** Encode float32 values (whole rows of 32-blocks for the block types) as `type`. */
export function encodeGgml(type: GgmlType, x: Float32Array): Uint8Array {
  if (type === 'F32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (type === 'F16') {
    const h = f32ArrayToF16(x);
    return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  }
  const blocks = x.length / QK;
  const out = new Uint8Array(ggmlBytes(type, x.length));
  const scales = new Float32Array(blocks); // d per block, stored as fp16 (q is computed with the fp32 d, as ggml does)
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    const o = b * (type === 'Q8_0' ? 2 + QK : 2 + QK / 2) + 2;
    if (type === 'Q8_0') {
      let amax = 0;
      for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[base + j]));
      const d = amax / 127;
      const id = d ? 1 / d : 0;
      scales[b] = d;
      for (let j = 0; j < QK; j++) {
        const v = x[base + j] * id;
        out[o + j] = (Math.sign(v) * Math.round(Math.abs(v))) & 0xff; // roundf (halves away from zero), as int8
      }
    } else {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < QK; j++) {
        const v = x[base + j];
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = max / -8;
      const id = d ? 1 / d : 0;
      scales[b] = d;
      for (let j = 0; j < QK / 2; j++) {
        const lo = Math.min(15, Math.trunc(x[base + j] * id + 8.5));
        const hi = Math.min(15, Math.trunc(x[base + QK / 2 + j] * id + 8.5));
        out[o + j] = lo | (hi << 4);
      }
    }
  }
  const d16 = f32ArrayToF16(scales);
  const step = type === 'Q8_0' ? 2 + QK : 2 + QK / 2;
  for (let b = 0; b < blocks; b++) {
    out[b * step] = d16[b] & 0xff;
    out[b * step + 1] = d16[b] >> 8;
  }
  return out;
}

/** Write a GGUF file: to `file.tmp`, renamed into place when complete. */
export function writeGguf(file: string, metadata: Record<string, GgufValue>, tensors: readonly GgufTensor[]): void {
  const h = new ByteWriter();
  h.u32(0x46554747); // "GGUF"
  h.u32(3);
  h.u64(tensors.length);
  const entries = Object.entries({ 'general.alignment': u32(ALIGNMENT), ...metadata });
  h.u64(entries.length);
  for (const [key, value] of entries) {
    h.string(key);
    writeValue(h, value);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const size = ggmlBytes(t.type, n);
    if (t.type !== 'F32' && t.type !== 'F16' && t.dims[0] % QK !== 0) throw new Error(`${t.name}: ${t.type} rows must be a multiple of ${QK} long, got ${t.dims[0]}`);
    h.string(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPE_ID[t.type]);
    h.u64(offset);
    sizes.push(size);
    offset += Math.ceil(size / ALIGNMENT) * ALIGNMENT;
  }
  h.pad(ALIGNMENT);
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, h.bytes());
    const zeros = new Uint8Array(ALIGNMENT);
    tensors.forEach((t, i) => {
      const bytes = encodeGgml(t.type, t.data());
      if (bytes.length !== sizes[i]) throw new Error(`${t.name}: ${bytes.length} bytes of data, its dims say ${sizes[i]}`);
      fs.writeSync(fd, bytes);
      fs.writeSync(fd, zeros, 0, (ALIGNMENT - (bytes.length % ALIGNMENT)) % ALIGNMENT);
    });
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}
