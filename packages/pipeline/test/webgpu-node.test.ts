// onnxruntime-node's WebGPU provider on the machine's adapter: without a GPU that is SwiftShader
// through the Vulkan loader (Debian's chromium ships its ICD; .ci/run installs libvulkan1). Each
// stage against the plain-TypeScript reference, then whole answers against Node's CPU provider.
// SwiftShader is ~100x slower than the CPU: tiny models, few tokens.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Graph, tensor } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { loadImage, processImage, readVisionConfig } from '@llava-mini/encoder/node';
import { maxAbsDiff, seededFloats } from '@llava-mini/core/testing';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, defaultModelDir, LlavaMini } from '@llava-mini/pipeline/node';
import { stageOutputs } from './stage-outputs.js';
import { expectStagesClose, referenceStages, relativeError } from './stage-reference.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
// Dawn reads the Vulkan loader's variables when the first WebGPU session starts, after this line.
if (!process.env.VK_ICD_FILENAMES && fs.existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

const webgpu = (await (await nodeBackend()).probe()).find((d) => d.device === 'webgpu');
const HAVE_WEBGPU = !!webgpu?.available;
if (!HAVE_WEBGPU) {
  const why = `[webgpu-node.test] no WebGPU adapter: ${webgpu?.reason} (apt-get install libvulkan1 chromium, or a GPU)`;
  // CI sets LLAVA_MINI_REQUIRE_WEBGPU: there a skipped WebGPU test is a failure, not a pass.
  if (process.env.LLAVA_MINI_REQUIRE_WEBGPU) throw new Error(why);
  console.warn(`${why}; skipped`);
}

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const VIDEO = path.resolve(__dirname, '../../../examples/assets/clip.mp4');
const SHAPES = path.resolve(__dirname, '../../../examples/assets/shapes.png');
const QUESTION = 'What is in this picture?';
const MAX_NEW = 4;
/** fp32 on WebGPU vs the float64-accumulating reference: measured 1e-6..2e-5 here; 1e-4 leaves room for other adapters. */
const FP32_TOLERANCE = 1e-4;
/** fp16 weights and activations: ~3 significant digits per op, through a few layers. */
const FP16_TOLERANCE = 3e-2;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-webgpu-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Whether the adapter runs float16 shaders (shader-f16): a one-MatMul fp16 model either runs or says it needs f16. */
async function hasShaderF16(): Promise<boolean> {
  const g = new Graph({ name: 'f16' });
  const x = g.input('x', 'float16', [2, 2]);
  g.output(g.matMul(x, x), 'y', 'float16', [2, 2]);
  const s = await (await nodeBackend()).createSession(g.toBytes(), { device: 'webgpu' });
  try {
    await s.run({ x: tensor('float16', [2, 2], Uint16Array.of(0x3c00, 0, 0, 0x3c00)) });
    return true;
  } catch (err) {
    if (/requires f16/.test((err as Error).message)) return false;
    throw err;
  } finally {
    await s.dispose();
  }
}

describe.skipIf(!HAVE_WEBGPU)('onnxruntime-node WebGPU', () => {
  let ckpt: string;
  let config: Record<string, any>;
  let fp32: string;
  let hd: string;
  let cpuIds: number[];
  let promptIds: number[];

  beforeAll(async () => {
    ckpt = path.join(root, 'hf');
    // 112 px: 64 patches, still past the 32-row attention limit, at a ninth of the 336 px cost.
    config = (await writeTinyCheckpoint(ckpt, { seed: 7, std: 0.3, imageSize: 112 })).config as Record<string, any>;
    fp32 = path.join(root, 'fp32');
    await convertCheckpoint(ckpt, fp32);
    const hdCkpt = path.join(root, 'hd-hf');
    await writeTinyCheckpoint(hdCkpt, { seed: 7, std: 0.3, resolutionRatio: 2, compressorSize: 2, imageSize: 112 });
    hd = path.join(root, 'hd');
    await convertCheckpoint(hdCkpt, hd);
    const cpu = await LlavaMini.fromPretrained(fp32, { device: 'cpu' });
    const r = await cpu.ask(IMAGE, QUESTION, { maxNewTokens: MAX_NEW }).done();
    await cpu.dispose();
    cpuIds = r.ids;
    promptIds = r.promptTokenIds;
  });

  it('attention with 32+ query rows matches the CPU (onnxruntime 1.30 flash-attention prefill is wrong there; the backend works around it)', async () => {
    const backend = await nodeBackend();
    const [Q, D] = [64, 32];
    const g = new Graph({ name: 'mha' });
    const q = g.input('q', 'float32', [1, Q, D]);
    g.output(g.multiHeadAttention(q, q, q, { numHeads: 2 }), 'y', 'float32', [1, Q, D]);
    const feeds = { q: tensor('float32', [1, Q, D], seededFloats(Q * D, 5, 3)) };
    const out: Float32Array[] = [];
    for (const device of ['cpu', 'webgpu'] as const) {
      const s = await backend.createSession(g.toBytes(), { device });
      out.push((await s.run(feeds)).y.data as Float32Array);
      expect(s.capabilities.attentionQueryLimit).toBe(device === 'webgpu' ? 31 : Infinity);
      await s.dispose();
    }
    expect(maxAbsDiff(out[0], out[1])).toBeLessThanOrEqual(1e-5);
  });

  it('fp32: encoder, compressor, pre-fusion, LLM prefill and decode each match the reference', async () => {
    const model = await LlavaMini.fromPretrained(fp32, { device: 'webgpu' });
    const img = await loadImage(IMAGE);
    const got = await stageOutputs(model, img, promptIds, cpuIds);
    await model.dispose();
    expect(model.parts.llm.device).toBe('webgpu');
    const want = referenceStages(ckpt, config, processImage(img, readVisionConfig(config)), promptIds, cpuIds);
    console.log('[webgpu-node.test] fp32 relative errors', expectStagesClose(got, want, FP32_TOLERANCE));
  });

  it('fp16 (where the adapter has shader-f16): each stage within fp16 tolerance of the reference', async (ctx) => {
    if (!(await hasShaderF16())) {
      console.log('[webgpu-node.test] fp16 not run: this adapter has no shader-f16 (SwiftShader has none)');
      ctx.skip();
    }
    const fp16 = path.join(root, 'fp16');
    await convertCheckpoint(ckpt, fp16, { dtype: 'fp16' });
    const model = await LlavaMini.fromPretrained(fp16, { device: 'webgpu' });
    const img = await loadImage(IMAGE);
    const got = await stageOutputs(model, img, promptIds, cpuIds);
    await model.dispose();
    const want = referenceStages(ckpt, config, processImage(img, readVisionConfig(config)), promptIds, cpuIds);
    console.log('[webgpu-node.test] fp16 relative errors', expectStagesClose(got, want, FP16_TOLERANCE));
  });

  it('a follow-up question about the same picture (pre-fusion over its cached prefix, a non-empty past): the same tokens as the CPU', async () => {
    const followUp = async (device: 'cpu' | 'webgpu') => {
      const model = await LlavaMini.fromPretrained(fp32, { device });
      try {
        await model.ask(IMAGE, QUESTION, { maxNewTokens: 1 }).done();
        const r = await model.ask(IMAGE, 'What color is it?', { maxNewTokens: MAX_NEW }).done();
        expect(model.vision.pictures.stats).toMatchObject({ entries: 1, hits: 1 });
        return r.ids;
      } finally {
        await model.dispose();
      }
    };
    expect(await followUp('webgpu')).toEqual(await followUp('cpu'));
  });

  const cases: { name: string; model: () => string; input: () => string | { video: string }; question?: string; maxNewTokens?: number; text?: string }[] = [
    { name: 'image', model: () => fp32, input: () => IMAGE },
    { name: 'HD image', model: () => hd, input: () => IMAGE },
    { name: 'video', model: () => fp32, input: () => ({ video: VIDEO }) },
    // Trained weights (models/llava-mini-shapes): it writes the assistant header (6 tokens), then the word.
    { name: 'the trained demo model, image', model: defaultModelDir, input: () => SHAPES, question: 'What color is the circle?', maxNewTokens: 10, text: 'red' },
  ];
  for (const c of cases) {
    it(`${c.name}: the same tokens as the CPU, and logits within tolerance`, async () => {
      const answer = async (device: 'cpu' | 'webgpu') => {
        const model = await LlavaMini.fromPretrained(c.model(), { device });
        const logits: Float32Array[] = [];
        // The logits behind each token: the LLM's own outputs, read as they are produced.
        const llm = model.parts.llm;
        const sequence = llm.sequence.bind(llm);
        llm.sequence = () => {
          const s = sequence();
          const prefill = s.prefill.bind(s);
          s.prefill = async (...a) => {
            const l = await prefill(...a);
            logits.push(l.slice());
            return l;
          };
          return s;
        };
        try {
          return { ...(await model.ask(c.input(), c.question ?? QUESTION, { maxNewTokens: c.maxNewTokens ?? MAX_NEW }).done()), logits };
        } finally {
          await model.dispose();
        }
      };
      const cpu = await answer('cpu');
      const gpu = await answer('webgpu');
      expect(gpu.ids).toEqual(cpu.ids);
      if (c.text) expect(gpu.text).toBe(c.text);
      expect(gpu.logits.length).toBe(cpu.logits.length);
      cpu.logits.forEach((l, i) => expect(relativeError(gpu.logits[i], l)).toBeLessThanOrEqual(FP32_TOLERANCE));
    });
  }
});
