// External data in chunks: a graph's weights split over `<graph>.onnx.data`, `.data.1`, ... none
// past the chunk limit and no tensor split between files, each chunk in the manifest with its
// sha256; the chunked folder answers with the unchunked folder's tokens, and a limit smaller than a
// tensor is refused before anything is left behind.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeModel, InvalidOptionError } from '@llava-mini/core';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, LlavaMini } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-chunks-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const LIMIT = 1_048_576;

/** Each external tensor of a graph: its file and byte range. */
function externalTensors(file: string): { name: string; location: string; offset: number; length: number }[] {
  return decodeModel(fs.readFileSync(file)).graph.initializer.filter((t) => t.data_location === 1).map((t) => {
    const kv = Object.fromEntries((t.external_data ?? []).map((e) => [e.key, e.value]));
    return { name: t.name, location: kv.location, offset: Number(kv.offset), length: Number(kv.length) };
  });
}

async function answer(dir: string): Promise<number[]> {
  const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
  try {
    return (await model.ask(IMAGE, 'What is in this picture?', { maxNewTokens: 5 }).done()).ids;
  } finally {
    await model.dispose();
  }
}

describe('external data in chunks', () => {
  const hf = path.join(root, 'hf');
  beforeAll(async () => {
    await writeTinyCheckpoint(hf, { seed: 4, std: 0.3, hiddenSize: 128, intermediateSize: 256 });
  });

  it('splits every graph at the limit, lists each chunk, and answers as one file per graph does', async () => {
    const whole = await convertCheckpoint(hf, path.join(root, 'whole'));
    const out = path.join(root, 'chunked');
    const manifest = await convertCheckpoint(hf, out, { maxChunkBytes: LIMIT });
    expect(manifest.stages.llm.files.map((f) => f.name).slice(0, 3)).toEqual(['llm.onnx', 'llm.onnx.data', 'llm.onnx.data.1']);
    for (const [name, stage] of Object.entries(manifest.stages)) {
      const listed = stage.files.map((f) => f.name);
      const tensors = externalTensors(path.join(out, stage.model));
      // Every file a graph points at is listed, and every listed data file is used.
      expect(new Set(tensors.map((t) => t.location)), name).toEqual(new Set(listed.filter((f) => f !== stage.model)));
      for (const t of tensors) expect(t.offset + t.length, `${name} ${t.name}`).toBeLessThanOrEqual(fs.statSync(path.join(out, t.location)).size);
      for (const f of stage.files) {
        const bytes = fs.readFileSync(path.join(out, f.name));
        if (f.name !== stage.model) expect(bytes.length, f.name).toBeLessThanOrEqual(LIMIT);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.sha256);
      }
    }
    // The same weights, only placed differently.
    const wholeBytes = (m: typeof manifest) => Object.values(m.stages).flatMap((s) => s.files.filter((f) => f.name !== s.model)).reduce((n, f) => n + f.bytes, 0);
    expect(wholeBytes(manifest)).toBeGreaterThanOrEqual(wholeBytes(whole));
    expect(manifest.stages.llm.files.length).toBeGreaterThan(whole.stages.llm.files.length);
    expect(await answer(out)).toEqual(await answer(path.join(root, 'whole')));
  });

  it('refuses a limit smaller than a tensor, leaving nothing behind', async () => {
    const out = path.join(root, 'too-small');
    await expect(convertCheckpoint(hf, out, { maxChunkBytes: 10_000 })).rejects.toThrow(InvalidOptionError);
    await expect(convertCheckpoint(hf, out, { maxChunkBytes: 10_000 })).rejects.toThrow(/^tensor .* has \d+ bytes, more than the 10000 one external-data file may hold/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('too-small'))).toEqual([]);
  });
});
