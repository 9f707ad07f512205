import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { f32ArrayToBf16, f32ArrayToF16, ModelFilesError, SafetensorsError } from '../src/index.js';
import { Checkpoint, SafetensorsFile, writeCheckpoint, writeSafetensors, type WritableTensor } from '../src/node.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-st-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 8;
  }
  return out;
}

/** A file with a hand-written header, to produce malformed ones. */
function rawFile(name: string, header: unknown, dataBytes: number, headerLenOverride?: bigint): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  return file;
}

describe('safetensors round trip', () => {
  const f32 = randomF32(6 * 5, 1);
  const tensors: WritableTensor[] = [
    { name: 'a.f32', dtype: 'float32', shape: [6, 5], data: f32 },
    { name: 'b.f16', dtype: 'float16', shape: [30], data: f32ArrayToF16(f32) },
    { name: 'c.bf16', dtype: 'bfloat16', shape: [5, 6], data: () => f32ArrayToBf16(f32) },
    { name: 'd.i64', dtype: 'int64', shape: [2], data: BigInt64Array.of(-3n, 2n ** 40n) },
    { name: 'e.empty', dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
  ];

  it('writes and reads back every dtype bit-exactly', () => {
    const file = path.join(dir, 'rt.safetensors');
    writeSafetensors(file, tensors, { format: 'pt' });
    const st = SafetensorsFile.open(file);
    expect(st.metadata).toEqual({ format: 'pt' });
    for (const t of tensors) {
      const back = st.read(t.name);
      expect(back.dtype).toBe(t.dtype);
      expect(back.dims).toEqual(t.shape);
      const data = typeof t.data === 'function' ? t.data() : t.data;
      expect(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))).toBe(true);
    }
    // The header keeps tensor data 8-byte aligned.
    expect(st.info('a.f32').offset % 8).toBe(0);
    // 16-bit reads widen to float32 within the format's rounding (8 and 11 significant bits).
    const bf = st.readFloat32('c.bf16');
    const hf = st.readFloat32('b.f16');
    for (let i = 0; i < f32.length; i++) {
      expect(Math.abs(bf[i] - f32[i])).toBeLessThanOrEqual(Math.abs(f32[i]) * 2 ** -8);
      expect(Math.abs(hf[i] - f32[i])).toBeLessThanOrEqual(Math.abs(f32[i]) * 2 ** -11);
    }
    st.close();
  });

  it('follows a sharded index and reports a missing shard', () => {
    const cpDir = path.join(dir, 'sharded');
    const shards = writeCheckpoint(cpDir, tensors, { maxShardBytes: 130 });
    expect(shards.length).toBeGreaterThan(1);
    const cp = Checkpoint.open(cpDir);
    expect(cp.names.sort()).toEqual(tensors.map((t) => t.name).sort());
    expect(Array.from(cp.readFloat32('a.f32'))).toEqual(Array.from(f32));
    cp.close();
    fs.rmSync(path.join(cpDir, shards[1]));
    expect(() => Checkpoint.open(cpDir)).toThrow(ModelFilesError);
    expect(() => Checkpoint.open(cpDir)).toThrow(/shard named in model.safetensors.index.json is missing/);
  });

  it('reads a single-file checkpoint and refuses an empty folder', () => {
    const cpDir = path.join(dir, 'single');
    expect(writeCheckpoint(cpDir, tensors)).toEqual(['model.safetensors']);
    expect(Checkpoint.open(cpDir).read('d.i64').data).toEqual(BigInt64Array.of(-3n, 2n ** 40n));
    fs.mkdirSync(path.join(dir, 'empty'));
    expect(() => Checkpoint.open(path.join(dir, 'empty'))).toThrow(ModelFilesError);
  });
});

describe('malformed safetensors', () => {
  const ok = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

  it('refuses a header length beyond the file', () => {
    const file = rawFile('badlen.safetensors', ok, 16, 10n ** 6n);
    expect(() => SafetensorsFile.open(file)).toThrow(SafetensorsError);
    expect(() => SafetensorsFile.open(file)).toThrow(/bad header length/);
  });
  it('refuses a file shorter than the length field', () => {
    const file = path.join(dir, 'short.safetensors');
    fs.writeFileSync(file, Buffer.alloc(5));
    expect(() => SafetensorsFile.open(file)).toThrow(/too short/);
  });
  it('refuses truncated data', () => {
    const file = rawFile('trunc.safetensors', ok, 10);
    expect(() => SafetensorsFile.open(file)).toThrow(/truncated/);
  });
  it('refuses out-of-range and inconsistent offsets', () => {
    const out = rawFile('range.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [16, 32] } }, 16);
    expect(() => SafetensorsFile.open(out)).toThrow(/out-of-range offsets/);
    const bad = rawFile('size.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 16);
    expect(() => SafetensorsFile.open(bad)).toThrow(/needs 16 bytes/);
  });
  it('refuses an unknown dtype and non-JSON headers', () => {
    const file = rawFile('dtype.safetensors', { w: { dtype: 'F8_E9M9', shape: [2], data_offsets: [0, 2] } }, 2);
    expect(() => SafetensorsFile.open(file)).toThrow(/unknown or unsupported dtype 'F8_E9M9'/);
    const junk = path.join(dir, 'junk.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    fs.writeFileSync(junk, Buffer.concat([len, Buffer.from('{{{{')]));
    expect(() => SafetensorsFile.open(junk)).toThrow(/not valid JSON/);
  });
  it('reports a missing file as ModelFilesError', () => {
    expect(() => SafetensorsFile.open(path.join(dir, 'nope.safetensors'))).toThrow(ModelFilesError);
  });
});
