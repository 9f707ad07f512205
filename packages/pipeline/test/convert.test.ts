import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointMismatchError, decodeModel, InvalidOptionError, ModelFilesError, type ProgressEvent, UnsupportedConfigError } from '@llava-mini/core';
import { writeTinyCheckpoint, writeTinyClip } from '@llava-mini/tiny';
import { afterAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, LlavaMini } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-convert-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
let n = 0;
const fresh = (name: string) => path.join(root, `${name}-${n++}`);

/** Nothing but finished folders: no temporary or partial files anywhere under root. */
function leftovers(): string[] {
  return fs.readdirSync(root, { recursive: true }).map(String).filter((f) => /partial|\.tmp$|\.old-/.test(f));
}

describe('convert', () => {
  it('converts a sharded bfloat16 checkpoint, reporting progress, with a manifest that matches the files', async () => {
    const hf = fresh('hf');
    await writeTinyCheckpoint(hf, { dtype: 'bfloat16', maxShardBytes: 200_000 });
    expect(fs.existsSync(path.join(hf, 'model.safetensors.index.json'))).toBe(true);
    const out = fresh('onnx');
    const events: ProgressEvent[] = [];
    const manifest = await convertCheckpoint(hf, out, { onProgress: (e) => events.push(e) });
    expect(events.length).toBeGreaterThan(50);
    expect(events.at(-1)?.done).toBe(events.length);
    for (const stage of Object.values(manifest.stages)) {
      for (const f of stage.files) {
        const bytes = fs.readFileSync(path.join(out, f.name));
        expect(bytes.length).toBe(f.bytes);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.sha256);
      }
    }
    expect(manifest.stages.encoder.files.map((f) => f.name)).toEqual(['encoder.onnx', 'encoder.onnx.data']);
    expect(fs.existsSync(path.join(out, 'tokenizer.json'))).toBe(true);
    expect(leftovers()).toEqual([]);
  });

  it('refuses to overwrite without force, and replaces a converted folder with it', async () => {
    const hf = fresh('hf');
    await writeTinyCheckpoint(hf);
    const out = fresh('onnx');
    await convertCheckpoint(hf, out);
    await expect(convertCheckpoint(hf, out)).rejects.toThrow(InvalidOptionError);
    const before = fs.statSync(path.join(out, 'manifest.json')).ino;
    await convertCheckpoint(hf, out, { force: true, dtype: 'fp16' });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')).stages.llm.dtype).toBe('fp16');
    // A new folder renamed into place (the old one removed after): a new file, not the old one rewritten.
    expect(fs.statSync(path.join(out, 'manifest.json')).ino).not.toBe(before);
    const stranger = fresh('not-a-model');
    fs.mkdirSync(stranger);
    fs.writeFileSync(path.join(stranger, 'notes.txt'), 'keep me');
    await expect(convertCheckpoint(hf, stranger, { force: true })).rejects.toThrow(/not a converted model folder/);
    expect(fs.readFileSync(path.join(stranger, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(leftovers()).toEqual([]);
  });

  it('a checkpoint whose tensors disagree with its config fails and leaves nothing behind', async () => {
    const hf = fresh('hf');
    await writeTinyCheckpoint(hf);
    const config = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify({ ...config, intermediate_size: 96 }));
    const out = fresh('onnx');
    await expect(convertCheckpoint(hf, out)).rejects.toThrow(CheckpointMismatchError);
    expect(fs.existsSync(out)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('names the config key it does not support, and reports broken files', async () => {
    const hf = fresh('hf');
    await writeTinyCheckpoint(hf);
    const configPath = path.join(hf, 'config.json');
    const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    for (const [key, value] of [['mm_projector_type', 'linear'], ['model_type', 'llava_llama'], ['rope_scaling', { rope_type: 'yarn', factor: 4 }]] as const) {
      fs.writeFileSync(configPath, JSON.stringify({ ...config, [key]: value }));
      const err = await convertCheckpoint(hf, fresh('onnx')).catch((e) => e);
      expect(err).toBeInstanceOf(UnsupportedConfigError);
      expect(err.key).toBe(key);
    }
    fs.writeFileSync(configPath, '{ not json');
    await expect(convertCheckpoint(hf, fresh('onnx'))).rejects.toThrow(ModelFilesError);
    fs.rmSync(configPath);
    await expect(convertCheckpoint(hf, fresh('onnx'))).rejects.toThrow(/config.json: cannot be read/);
    expect(leftovers()).toEqual([]);
  });

  it('takes CLIP weights from a separate CLIP folder when the checkpoint has none, with the same result', async () => {
    const full = fresh('hf');
    await writeTinyCheckpoint(full, { seed: 3, std: 0.3 });
    const noClip = fresh('hf-noclip');
    await writeTinyCheckpoint(noClip, { seed: 3, std: 0.3, includeVision: false });
    const clip = fresh('clip');
    await writeTinyClip(clip, { seed: 3, std: 0.3 });
    await expect(convertCheckpoint(noClip, fresh('onnx'))).rejects.toThrow(/--clip/);
    const a = fresh('onnx');
    const b = fresh('onnx');
    await convertCheckpoint(full, a);
    await convertCheckpoint(noClip, b, { clipDir: clip });
    const answers = [];
    for (const dir of [a, b]) {
      const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
      answers.push((await model.ask(IMAGE, 'What is this?', { maxNewTokens: 5 }).done()).ids);
      await model.dispose();
    }
    expect(answers[0]).toEqual(answers[1]);
  });

  it('fp16, q8 and q4 conversions load and answer; quantized graphs hold MatMulNBits weights', async () => {
    const hf = fresh('hf');
    await writeTinyCheckpoint(hf, { hiddenSize: 128, intermediateSize: 256, visionHiddenSize: 64, visionIntermediateSize: 128, std: 0.3 });
    const sizes: Record<string, number> = {};
    for (const dtype of ['fp32', 'fp16', 'q8', 'q4'] as const) {
      const out = fresh(`onnx-${dtype}`);
      const manifest = await convertCheckpoint(hf, out, { dtype });
      sizes[dtype] = manifest.stages.llm.files.reduce((s, f) => s + f.bytes, 0);
      const ops = decodeModel(fs.readFileSync(path.join(out, 'llm.onnx'))).graph.node.map((node) => node.op_type);
      expect(ops.includes('MatMulNBits')).toBe(dtype === 'q8' || dtype === 'q4');
      expect(manifest.stages.encoder.dtype).toBe(dtype === 'fp16' ? 'fp16' : 'fp32'); // CLIP is not quantized unless asked
      // The folder answers; for q4 (the most rewritten graphs) as the same dtype converted in memory does.
      const answers = [];
      for (const dir of dtype === 'q4' ? [out, hf] : [out]) {
        const model = await LlavaMini.fromPretrained(dir, { device: 'cpu', dtype });
        answers.push(await model.ask(IMAGE, 'What is this?', { maxNewTokens: 3 }).done());
        await model.dispose();
      }
      if (dtype === 'q4') expect(answers[0].ids).toEqual(answers[1].ids);
      if (answers[0].finishReason === 'length') expect(answers[0].ids).toHaveLength(3);
      else expect(answers[0].finishReason).toBe('stop');
      await expect(LlavaMini.fromPretrained(out, { dtype: dtype === 'fp32' ? 'q4' : 'fp32' })).rejects.toThrow(/converted with dtype/);
    }
    // At this size the RoPE tables (8192 positions) weigh as much as the weights, so only the order is checked.
    expect(sizes.fp16).toBeLessThan(sizes.fp32 * 0.6);
    expect(sizes.q8).toBeLessThan(sizes.fp32);
    expect(sizes.q4).toBeLessThan(sizes.q8);
  });

  it('loads an unconverted checkpoint in memory, with the same answer as the converted one', async () => {
    const hf = fresh('hf');
    await writeTinyCheckpoint(hf, { std: 0.3 });
    const out = fresh('onnx');
    await convertCheckpoint(hf, out);
    const ids = [];
    for (const dir of [hf, out]) {
      const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
      ids.push((await model.ask(IMAGE, 'What is this?', { maxNewTokens: 5 }).done()).ids);
      await model.dispose();
    }
    expect(ids[0]).toEqual(ids[1]);
  });
});
