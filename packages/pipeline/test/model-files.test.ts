// A converted folder is checked before it is trusted: the manifest's shape, its files' sizes and
// sha256 (hashed once, then trusted while size and mtime stay), and the target it was made for.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DeviceUnavailableError, InvalidOptionError, ModelFilesError, type ProgressEvent } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, ensureTinyModel, LlavaMini, MANIFEST_VERSION } from '../src/node.js';

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-model-files-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let hf: string;
let converted: string;
let n = 0;

beforeAll(async () => {
  hf = path.join(root, 'hf');
  await writeTinyCheckpoint(hf);
  converted = path.join(root, 'onnx');
  await convertCheckpoint(hf, converted);
});

/** A fresh copy of the converted folder, to damage. */
function copy(): string {
  const dir = path.join(root, `copy-${n++}`);
  fs.cpSync(converted, dir, { recursive: true });
  return dir;
}

async function open(dir: string, events: ProgressEvent[] = []) {
  const model = await LlavaMini.fromPretrained(dir, { device: 'cpu', onProgress: (e) => events.push(e) });
  await model.dispose();
  return events.filter((e) => e.task === 'verify');
}

const manifestOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const writeManifest = (dir: string, m: unknown) => fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));

describe('converted model files', () => {
  it('hashes each file once: the converter records them, a changed file is hashed again', async () => {
    expect(await open(converted)).toEqual([]); // recorded at conversion
    const dir = copy(); // new mtimes: hashed once more
    const first = await open(dir);
    expect(first.map((e) => e.item)).toContain('llm.onnx.data');
    expect(first.at(-1)).toMatchObject({ done: first.at(-1)?.total, unit: 'bytes' });
    expect(await open(dir)).toEqual([]); // recorded by the first load
    // Rewritten with the same bytes: a new mtime, so hashed again (and accepted).
    const data = path.join(dir, 'compressor.onnx.data');
    fs.writeFileSync(data, fs.readFileSync(data));
    fs.utimesSync(data, new Date(), new Date(Date.now() + 5000));
    expect((await open(dir)).map((e) => e.item)).toEqual(['compressor.onnx.data']);
  });

  it('a .data file corrupted at the same size is refused, naming the file', async () => {
    const dir = copy();
    const data = path.join(dir, 'llm.onnx.data');
    const bytes = fs.readFileSync(data);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(data, bytes);
    fs.utimesSync(data, new Date(), new Date(Date.now() + 5000));
    const err = await LlavaMini.fromPretrained(dir, { device: 'cpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(ModelFilesError);
    expect(err.message).toMatch(/llm\.onnx\.data: does not match its sha256 in the manifest .*convert the checkpoint again/);
  });

  it('a truncated or missing file is refused before hashing', async () => {
    const dir = copy();
    fs.truncateSync(path.join(dir, 'encoder.onnx.data'), 100);
    await expect(LlavaMini.fromPretrained(dir, { device: 'cpu' })).rejects.toThrow(/encoder\.onnx\.data: is 100 bytes, the manifest says \d+/);
    fs.rmSync(path.join(dir, 'encoder.onnx.data'));
    await expect(LlavaMini.fromPretrained(dir, { device: 'cpu' })).rejects.toThrow(/encoder\.onnx\.data: is listed in the manifest but missing/);
  });

  it('holds nothing derivable, and still loads a folder whose manifest has the fields earlier converters wrote', async () => {
    const m = manifestOf(converted);
    expect(m).not.toHaveProperty('keyGrid'); // config.json gives it
    for (const stage of Object.values(m.stages)) expect(stage).not.toHaveProperty('format'); // the graph and the dtype give it
    const earlier = copy();
    const keyGrid = (m.config.vision_config.image_size / m.config.vision_config.patch_size) * (m.config.resolution_ratio ?? 1);
    const stages = Object.fromEntries(Object.entries(m.stages).map(([name, stage]) => [name, { ...(stage as object), format: { dtype: 'float32' } }]));
    writeManifest(earlier, { ...m, keyGrid, stages });
    const answers: number[][] = [];
    for (const dir of [converted, earlier]) {
      const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
      answers.push((await model.ask(IMAGE, 'What is this?', { maxNewTokens: 6 }).done()).ids);
      await model.dispose();
    }
    expect(answers[1]).toEqual(answers[0]);
  });

  it('a malformed manifest is a typed one-line error naming the field', async () => {
    const m = manifestOf(converted);
    const { stages: _, ...noStages } = m;
    const cases: [unknown, RegExp][] = [
      [noStages, /has no "stages"/],
      [{ ...m, stages: { ...m.stages, llm: undefined } }, /has no "stages\.llm"/],
      [{ ...m, target: 'tpu' }, /has target "tpu", not one of cpu, cuda, webgpu/],
      [{ ...m, contextLength: -1 }, /"contextLength" must be a positive integer/],
      [{ ...m, config: null }, /has no "config" object/],
      [{ ...m, tokenizer: 'tokenizer.json' }, /"tokenizer" must be a list of files/],
      [{ ...m, stages: { ...m.stages, llm: { ...m.stages.llm, model: '../../etc/passwd' } } }, /"stages\.llm\.model" must name a file in the folder/],
      [{ ...m, stages: { ...m.stages, encoder: { ...m.stages.encoder, files: [{ name: 'encoder.onnx', bytes: 1 }] } } }, /"stages\.encoder\.files\[0\]" must be/],
      [{ ...m, stages: { ...m.stages, prefusion: { ...m.stages.prefusion, dtype: 'int3' } } }, /"stages\.prefusion\.dtype" must be one of/],
    ];
    for (const [manifest, message] of cases) {
      const dir = copy();
      writeManifest(dir, manifest);
      const err = await LlavaMini.fromPretrained(dir, { device: 'cpu' }).catch((e) => e);
      expect(err).toBeInstanceOf(ModelFilesError);
      expect(err.message).toMatch(message);
      expect(err.message).not.toMatch(/\n/);
    }
    const dir = copy();
    fs.writeFileSync(path.join(dir, 'manifest.json'), '{"format": "llava-mini-onnx", ');
    await expect(LlavaMini.fromPretrained(dir, { device: 'cpu' })).rejects.toThrow(/manifest\.json: is not valid JSON/);
    fs.rmSync(path.join(dir, 'manifest.json'));
    fs.mkdirSync(path.join(dir, 'manifest.json'));
    await expect(LlavaMini.fromPretrained(dir, { device: 'cpu' })).rejects.toThrow(/manifest\.json: cannot be read: .*is a folder, not a file/);
  });

  it("a folder converted for another target is refused with the target and how to convert", async () => {
    const cuda = path.join(root, 'onnx-cuda');
    await convertCheckpoint(hf, cuda, { target: 'cuda', dtype: 'fp16' });
    const onCpu = await LlavaMini.fromPretrained(cuda, { device: 'cpu' }).catch((e) => e);
    expect(onCpu).toBeInstanceOf(InvalidOptionError);
    expect(onCpu.message).toMatch(/was converted for target cuda \(devices cuda\), not for device 'cpu': .*llava-mini convert CHECKPOINT --out DIR --target cpu/);
    await expect(LlavaMini.fromPretrained(cuda, { device: 'wasm' })).rejects.toThrow(/target cuda .* not for device 'wasm'/);
    const hasCuda = (await (await nodeBackend()).probe()).some((d) => d.device === 'cuda' && d.available);
    if (!hasCuda) {
      // 'auto' goes to the target's device; without CUDA that is a DeviceUnavailableError saying how to get a CPU model.
      const auto = await LlavaMini.fromPretrained(cuda).catch((e) => e);
      expect(auto).toBeInstanceOf(DeviceUnavailableError);
      expect(auto.message).toMatch(/converted for target cuda; for the CPU, convert the checkpoint again with --target cpu/);
    }
    // A CPU (float32) model is refused on CUDA, also when converted in memory.
    await expect(LlavaMini.fromPretrained(converted, { device: 'cuda' })).rejects.toThrow(/converted for target cpu .* --target cuda/);
    await expect(LlavaMini.fromPretrained(hf, { device: 'cuda' })).rejects.toThrow(/converted for target cpu/);
  });
});

describe('load options', () => {
  it('decodeTimeoutSeconds is one rule for images and videos, checked before anything is read', async () => {
    for (const bad of [1.5, -1, Number.NaN]) {
      await expect(LlavaMini.fromPretrained('/nonexistent', { decodeTimeoutSeconds: bad })).rejects.toThrow(/decodeTimeoutSeconds must be a whole number >= 0/);
    }
    await expect(LlavaMini.fromPretrained('/nonexistent', { decodeTimeoutSeconds: 5 })).rejects.toThrow(ModelFilesError);
  });
});

describe('ensureTinyModel', () => {
  it('makes a folder of an older manifest version again instead of handing it to a loader that refuses it', async () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'llava-ensure-')), 'tiny');
    try {
      await ensureTinyModel(dir);
      const file = path.join(dir, 'manifest.json');
      const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
      fs.writeFileSync(file, JSON.stringify({ ...manifest, version: MANIFEST_VERSION - 1 }));
      await expect(LlavaMini.fromPretrained(dir, { device: 'cpu' })).rejects.toThrow(/convert the checkpoint again/);
      await ensureTinyModel(dir);
      expect(JSON.parse(fs.readFileSync(file, 'utf8')).version).toBe(MANIFEST_VERSION);
      const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
      await model.dispose();
    } finally {
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    }
  }, 120_000);
});
