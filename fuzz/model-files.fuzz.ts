// Fuzz targets for the files a model folder brings (from disk, soon from the hub): safetensors files
// and their index, config.json, manifest.json, the tokenizer's files, and the ONNX scan.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { externalDataLocations, modelInputs, modelNodes } from '@llava-mini/core';
import { Checkpoint, SafetensorsFile } from '@llava-mini/core/node';
import { Tokenizer } from '@llava-mini/llm';
import { parseManifest } from '@llava-mini/pipeline';
import { readModelConfig } from '../packages/pipeline/src/model-config.js';
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { CORPUS, fuzz, mutatedSeeds, seeds } from './harness.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const json = (target: string, file: string) => JSON.parse(fs.readFileSync(path.join(CORPUS, target, file), 'utf8')) as Record<string, unknown>;

/** A JSON object: a seed's keys replaced by any JSON value (or deleted), at the top level or one level down. */
function editedObject(seed: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(seed);
  const nested = keys.filter((k) => seed[k] !== null && typeof seed[k] === 'object' && !Array.isArray(seed[k]));
  const change = fc.oneof(
    fc.tuple(fc.constantFrom(...keys), fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined })).map(([k, v]) => ({ path: [k], v })),
    ...(nested.length
      ? [fc.tuple(fc.constantFrom(...nested), fc.string(), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined })).map(([k, sub, v]) => ({ path: [k, Object.keys(seed[k] as object)[sub.length % Object.keys(seed[k] as object).length] ?? sub], v }))]
      : []),
  );
  return fc.array(change, { minLength: 1, maxLength: 4 }).map((changes) => {
    const out = structuredClone(seed) as Record<string, unknown>;
    for (const { path: [a, b], v } of changes) {
      const holder = b === undefined ? out : (out[a] as Record<string, unknown>);
      const key = b ?? a;
      if (holder === null || typeof holder !== 'object') continue;
      if (v === undefined) delete holder[key];
      else holder[key] = v;
    }
    return out;
  });
}

/** A safetensors file: an 8-byte little-endian length, a JSON header, then data. */
function safetensorsBytes(header: unknown, data: Uint8Array, lengthDelta: number): Uint8Array {
  const h = Buffer.from(JSON.stringify(header) ?? 'null');
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(BigInt(Math.max(0, h.length + lengthDelta)));
  return new Uint8Array(Buffer.concat([n, h, data]));
}

const dim = fc.oneof(fc.nat(8), fc.integer({ min: -2, max: 2 ** 40 }), fc.constantFrom(1.5, 2 ** 53, Number.MAX_SAFE_INTEGER));
const tensorEntry = fc.record(
  {
    dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'I32', 'I8', 'U8', 'BOOL', 'F64', 'F8_E4M3'), fc.jsonValue({ maxDepth: 1 })),
    shape: fc.oneof(fc.array(dim, { maxLength: 4 }), fc.jsonValue({ maxDepth: 1 })),
    data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), fc.array(dim, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
  },
  { requiredKeys: [] },
);
const safetensorsArb = fc.oneof(
  mutatedSeeds('safetensors'),
  fc
    .tuple(
      fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__metadata__', '__proto__', 'constructor')), fc.oneof(tensorEntry, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 4 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.oneof(fc.constant(0), fc.integer({ min: -4, max: 4 }), fc.constant(2 ** 40)),
    )
    .map(([header, data, delta]) => safetensorsBytes(header, data, delta)),
);

describe('model files', () => {
  it('safetensors: SafetensorsFile.open and every tensor read', async () => {
    const file = path.join(dir, 'model.safetensors');
    await fuzz('safetensors', safetensorsArb, (bytes) => {
      fs.writeFileSync(file, bytes);
      const f = SafetensorsFile.open(file);
      try {
        for (const name of f.tensors.keys()) f.read(name);
      } finally {
        f.close();
      }
    });
  });

  it('checkpoint index: Checkpoint.open and every tensor read, never a file outside the folder', async () => {
    const folder = path.join(dir, 'checkpoint');
    fs.mkdirSync(folder, { recursive: true });
    // A real shard in the folder, and one beside it that no index may reach.
    fs.copyFileSync(path.join(CORPUS, 'safetensors', 'two-tensors.safetensors'), path.join(folder, 'model-00001-of-00002.safetensors'));
    fs.copyFileSync(path.join(CORPUS, 'safetensors', 'two-tensors.safetensors'), path.join(dir, 'outside.safetensors'));
    const shard = fc.oneof(
      fc.constantFrom('model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', '../outside.safetensors', path.join(dir, 'outside.safetensors'), '', '.', '..', 'a/../model-00001-of-00002.safetensors'),
      fc.string({ maxLength: 12 }),
      fc.jsonValue({ maxDepth: 1 }),
    );
    const index = fc.oneof(
      fc.record({ weight_map: fc.oneof(fc.dictionary(fc.constantFrom('w', 'b', 'x', '__proto__'), shard, { maxKeys: 3 }), fc.jsonValue({ maxDepth: 2 })) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
      mutatedSeeds('checkpoint-index').map(text),
    );
    await fuzz('checkpoint-index', index, (indexText) => {
      fs.writeFileSync(path.join(folder, 'model.safetensors.index.json'), indexText);
      const cp = Checkpoint.open(folder);
      try {
        for (const name of cp.names) cp.read(name);
      } finally {
        cp.close();
      }
      const map = (JSON.parse(indexText) as { weight_map: Record<string, unknown> }).weight_map;
      for (const s of Object.values(map)) {
        if (path.dirname(path.resolve(folder, String(s))) !== folder) throw new Error(`the index named ${JSON.stringify(s)}, outside the folder, and was accepted`);
      }
    });
  });

  it('config.json: readModelConfig', async () => {
    const seed = json('model-config', 'config.json');
    const arb = fc.oneof(editedObject(seed), mutatedSeeds('model-config').map((b) => { try { return JSON.parse(text(b)) as unknown; } catch { return null; } }));
    await fuzz('model-config', arb, (config) => {
      if (config === null || typeof config !== 'object' || Array.isArray(config)) return;
      readModelConfig(config as Record<string, unknown>);
    });
  });

  it('manifest.json: parseManifest', async () => {
    const arb = fc.oneof(editedObject(json('manifest', 'manifest.json')).map((m) => JSON.stringify(m)), mutatedSeeds('manifest').map(text));
    await fuzz('manifest', arb, (t) => parseManifest(t, 'manifest.json'));
  });

  it('tokenizer files: Tokenizer.fromFiles, then a round trip', async () => {
    const [generation, tokenizer, tokenizerConfig] = ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json'].map((f) => json('tokenizer', f));
    const arb = fc.record({
      tokenizer: fc.oneof(fc.constant(tokenizer), editedObject(tokenizer)).map((o) => JSON.stringify(o)),
      tokenizerConfig: fc.oneof(fc.constant(tokenizerConfig), editedObject(tokenizerConfig)).map((o) => JSON.stringify(o)),
      generationConfig: fc.oneof(fc.constant(JSON.stringify(generation)), editedObject(generation).map((o) => JSON.stringify(o)), mutatedSeeds('tokenizer').map(text)),
      text: fc.string({ maxLength: 40 }),
    });
    await fuzz('tokenizer', arb, ({ text: t, ...files }) => {
      const tok = Tokenizer.fromFiles(files);
      tok.decode(tok.encode(t));
    });
  });

  it('ONNX scan: modelNodes, modelInputs, externalDataLocations', async () => {
    const raw = fc.array(fc.tuple(fc.nat(20), fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7), fc.uint8Array({ maxLength: 12 })), { maxLength: 8 }).map((fieldsList) => {
      const parts: number[] = [];
      for (const [field, wire, payload] of fieldsList) {
        parts.push((field << 3) | wire);
        if (wire === 2) parts.push(payload.length);
        parts.push(...payload);
      }
      return new Uint8Array(parts);
    });
    await fuzz('onnx-scan', fc.oneof(mutatedSeeds('onnx-scan'), raw), (bytes) => {
      modelNodes(bytes);
      modelInputs(bytes);
      externalDataLocations(bytes);
    }, seeds('onnx-scan'));
  });
});
