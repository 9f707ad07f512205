// Regressions from fuzzing (fuzz/, `npm run fuzz`): each input here once escaped as an untyped error,
// a message of several lines, or a file read outside its folder.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE } from '../src/errors.js';
import { externalDataLocations, LlavaMiniError, ModelFilesError, modelInputs, modelNodes, nestedDeeperThan, SafetensorsError } from '../src/index.js';
import { Checkpoint, writeSafetensors } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-hostile-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('a checkpoint index names files of its own folder only', () => {
  const dir = path.join(root, 'checkpoint');
  fs.mkdirSync(dir);
  writeSafetensors(path.join(dir, 'model-00001.safetensors'), [{ name: 'w', dtype: 'float32', shape: [1], data: new Float32Array([1]) }]);
  writeSafetensors(path.join(root, 'outside.safetensors'), [{ name: 'w', dtype: 'float32', shape: [1], data: new Float32Array([2]) }]);
  const open = (index: unknown) => {
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    return () => Checkpoint.open(dir);
  };

  it('refuses a shard that is not a plain file name: a path out, an absolute path, a number', () => {
    for (const shard of ['../outside.safetensors', path.join(root, 'outside.safetensors'), 'sub/model-00001.safetensors', '..', '.', '', 0, null]) {
      expect(open({ weight_map: { w: shard } }), JSON.stringify(shard)).toThrow(ModelFilesError);
    }
    expect(open({ weight_map: { w: '../outside.safetensors' } })).toThrow(/weight_map puts 'w' in "\.\.\/outside\.safetensors", which is not a file name of this folder/);
    for (const index of [{ weight_map: [] }, { weight_map: 'x' }, null, []]) expect(open(index), JSON.stringify(index)).toThrow(/has no weight_map/);
    const cp = open({ weight_map: { w: 'model-00001.safetensors' } })();
    expect([...cp.readFloat32('w')]).toEqual([1]);
    cp.close();
  });
});

describe('the ONNX scan refuses malformed protobuf with a typed error', () => {
  it('wire types 3, 4, 6 and 7, truncated varints and fields', () => {
    for (const bytes of [[0x3a, 0x02, 0x0e, 0x00], [0x0b], [0x0c], [0x0e], [0x0f], [0x3a, 0x05, 0x01], [0x08, 0x80], [0x3a]]) {
      for (const scan of [modelNodes, modelInputs, externalDataLocations]) {
        expect(() => scan(new Uint8Array(bytes)), `${scan.name} ${bytes}`).toThrow(ModelFilesError);
      }
    }
    expect(() => modelNodes(new Uint8Array([0x0e]))).toThrow('ONNX model: is not a valid serialized model: unsupported protobuf wire type 6');
  });
});

describe('every LlavaMiniError message is one bounded line', () => {
  it('line breaks quoted from input are escaped, and a long message is cut, its cause kept', () => {
    expect(new SafetensorsError('f', "unrecognized field 'c\ntent'\r\n").message).toBe("f: unrecognized field 'c\\ntent'\\n");
    const cause = new Error('x'.repeat(5000));
    const long = new LlavaMiniError('INTERNAL', cause.message, { cause });
    expect(long.message).toBe(`${'x'.repeat(MAX_MESSAGE)}...`);
    expect(long.cause).toBe(cause);
  });
});

describe('nestedDeeperThan', () => {
  it('counts levels of arrays and objects without recursing, so 200,000 levels are measured', () => {
    const nest = (n: number) => JSON.parse(`${'[{"a":'.repeat(n)}1${'}]'.repeat(n)}`) as unknown;
    expect([nestedDeeperThan(nest(50), 100), nestedDeeperThan(nest(51), 100), nestedDeeperThan(nest(100_000), 100)]).toEqual([false, true, true]);
    expect([nestedDeeperThan(1, 0), nestedDeeperThan('x', 0), nestedDeeperThan(null, 0), nestedDeeperThan({}, 0), nestedDeeperThan([[]], 1)]).toEqual([false, false, false, true, true]);
  });
});
