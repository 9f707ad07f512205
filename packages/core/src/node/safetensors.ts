import * as fs from 'node:fs';
import * as path from 'node:path';
import { toFloat32 } from '../dtype.js';
import { CheckpointMismatchError, errorMessage, ModelFilesError, SafetensorsError } from '../errors.js';
import { buildHeader, headerLength, parseHeader, type TensorInfo } from '../safetensors.js';
import { BYTES_PER_ELEMENT, type DType, type Tensor, tensor, tensorBytes, type TypedArrayFor } from '../tensor.js';
import { makeDirs, tempPathFor, writeFileAtomic } from './files.js';

function readExactly(fd: number, length: number, position: number, file: string): Uint8Array {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new SafetensorsError(file, `unexpected end of file at byte ${position + done} (truncated)`);
    done += n;
  }
  return buf;
}

/**
 * One .safetensors file, opened for random access: the header is read and validated on open, and
 * each tensor is read on demand with a positioned read, so memory holds only what was asked for.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new ModelFilesError(file, `cannot open: ${errorMessage(err)}`, { cause: err });
    }
    try {
      const size = fs.fstatSync(fd).size;
      const n = headerLength(readExactly(fd, Math.min(8, size), 0, file), file, size);
      const header = parseHeader(readExactly(fd, n, 8, file), file, size);
      return new SafetensorsFile(file, fd, header.tensors, header.metadata);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new CheckpointMismatchError(`${this.path}: no tensor named '${name}'`);
    return info;
  }

  /** Read one tensor in its stored dtype. */
  read(name: string): Tensor {
    const info = this.info(name);
    if (this.fd === undefined) throw new SafetensorsError(this.path, 'file is closed');
    const bytes = readExactly(this.fd, info.byteLength, info.offset, this.path);
    const Ctor = typedArrayFor(info.dtype);
    const data = new Ctor(bytes.buffer as ArrayBuffer, 0, info.byteLength / BYTES_PER_ELEMENT[info.dtype as DType]);
    return tensor(info.dtype, info.shape, data as TypedArrayFor<DType>);
  }

  /** Read one float tensor (F32, F16 or BF16) as float32. */
  readFloat32(name: string): Float32Array {
    return toFloat32(this.read(name));
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

function typedArrayFor(dtype: DType) {
  switch (dtype) {
    case 'float32':
      return Float32Array;
    case 'float16':
    case 'bfloat16':
      return Uint16Array;
    case 'int8':
      return Int8Array;
    case 'uint8':
    case 'bool':
      return Uint8Array;
    case 'int32':
      return Int32Array;
    case 'int64':
      return BigInt64Array;
  }
}

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/**
 * The weights of a Hugging Face checkpoint folder: one `model.safetensors`, or shards listed in
 * `model.safetensors.index.json`. Shards are opened lazily; every shard the index names must exist.
 */
export class Checkpoint {
  private readonly files = new Map<string, SafetensorsFile>();

  private constructor(
    readonly dir: string,
    /** tensor name -> shard file name */
    private readonly weightMap: ReadonlyMap<string, string>,
  ) {}

  static open(dir: string): Checkpoint {
    const indexPath = path.join(dir, INDEX_FILE);
    const singlePath = path.join(dir, SINGLE_FILE);
    if (fs.existsSync(indexPath)) {
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
      } catch (err) {
        throw new ModelFilesError(indexPath, `not a valid index: ${errorMessage(err)}`, { cause: err });
      }
      if (!index?.weight_map || typeof index.weight_map !== 'object' || Array.isArray(index.weight_map)) throw new ModelFilesError(indexPath, 'has no weight_map');
      const map = new Map(Object.entries(index.weight_map));
      // A shard is a file of this folder: a name with a separator or '..' could reach any file (a
      // checkpoint may come from anyone on the hub).
      for (const [tensor, shard] of map) {
        if (typeof shard !== 'string' || shard === '' || shard === '.' || shard === '..' || /[\\/]/.test(shard)) {
          throw new ModelFilesError(indexPath, `weight_map puts '${tensor}' in ${JSON.stringify(shard)}, which is not a file name of this folder`);
        }
      }
      for (const shard of new Set(map.values())) {
        const shardPath = path.join(dir, shard);
        if (!fs.existsSync(shardPath)) throw new ModelFilesError(shardPath, `shard named in ${INDEX_FILE} is missing`);
      }
      return new Checkpoint(dir, map);
    }
    if (fs.existsSync(singlePath)) {
      const file = SafetensorsFile.open(singlePath);
      const cp = new Checkpoint(dir, new Map([...file.tensors.keys()].map((k) => [k, SINGLE_FILE])));
      cp.files.set(SINGLE_FILE, file);
      return cp;
    }
    throw new ModelFilesError(dir, `no ${SINGLE_FILE} or ${INDEX_FILE} in this folder`);
  }

  get names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  read(name: string): Tensor {
    return this.fileOf(name).read(name);
  }

  readFloat32(name: string): Float32Array {
    return this.fileOf(name).readFloat32(name);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }

  private fileOf(name: string): SafetensorsFile {
    const shard = this.weightMap.get(name);
    if (shard === undefined) throw new CheckpointMismatchError(`checkpoint ${this.dir} has no tensor '${name}'`);
    let file = this.files.get(shard);
    if (!file) {
      file = SafetensorsFile.open(path.join(this.dir, shard));
      this.files.set(shard, file);
    }
    if (!file.has(name)) throw new CheckpointMismatchError(`${INDEX_FILE} puts '${name}' in ${shard}, but that shard does not have it`);
    return file;
  }
}

/** A tensor to write; `data` may be a function so large checkpoints are produced one tensor at a time. */
export interface WritableTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  data: Tensor['data'] | (() => Tensor['data']);
}

/** Write tensors to one .safetensors file (temporary name, then rename). */
export function writeSafetensors(file: string, tensors: readonly WritableTensor[], metadata?: Record<string, string>): void {
  const { header } = buildHeader(tensors, metadata);
  const tmp = tempPathFor(file);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, header);
    for (const t of tensors) {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const bytes = tensorBytes(tensor(t.dtype, t.shape, data as never));
      fs.writeSync(fd, bytes);
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Write a checkpoint in Hugging Face's sharded layout: `model-0000i-of-0000n.safetensors` files of at
 * most `maxShardBytes` each (a tensor never spans shards) and `model.safetensors.index.json`.
 * With a single shard it writes `model.safetensors` and no index, as transformers does.
 */
export function writeCheckpoint(dir: string, tensors: readonly WritableTensor[], options: { maxShardBytes?: number; metadata?: Record<string, string> } = {}): string[] {
  const max = options.maxShardBytes ?? 5e9;
  const shards: WritableTensor[][] = [[]];
  let size = 0;
  let total = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[t.dtype];
    if (size > 0 && size + bytes > max) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += bytes;
    total += bytes;
  }
  makeDirs(dir);
  const metadata = { format: 'pt', ...options.metadata };
  if (shards.length === 1) {
    writeSafetensors(path.join(dir, SINGLE_FILE), shards[0], metadata);
    return [SINGLE_FILE];
  }
  const pad = (i: number) => String(i).padStart(5, '0');
  const names = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    writeSafetensors(path.join(dir, names[i]), shard, metadata);
    for (const t of shard) weightMap[t.name] = names[i];
  });
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  writeFileAtomic(path.join(dir, INDEX_FILE), `${JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2)}\n`);
  return names;
}
