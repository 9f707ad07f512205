// Seeded LLaVA-Mini checkpoints for the benches (written and converted once, cached under .cache/bench/),
// and one timed image question through the pipeline's stages.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type InferenceSession, type Tensor, tensor, toFloat32 } from '@llava-mini/core';
import type { RGB8 } from '@llava-mini/encoder';
import type { Sequence, Tokenizer } from '@llava-mini/llm';
import { MANIFEST_VERSION, type ModelParts } from '@llava-mini/pipeline';
import { buildLlavaPrompt, embeddingIds, llmInput } from '@llava-mini/prefusion';
import { convertCheckpoint } from '@llava-mini/pipeline/node';
import { type TinyOptions, writeTinyCheckpoint } from '@llava-mini/tiny';
import { CACHE, fmt, log, now } from './common.js';
import type { VisionShape } from './flops.js';

export interface Backbone {
  name: string;
  /** LLM + pre-fusion + CLIP sizes (compressorSize is set per model). */
  options: TinyOptions;
}

/** Write the checkpoint for `options` and convert it (fp32, CPU); both are reused while the options stay the same. */
export async function ensureModel(name: string, options: TinyOptions, contextLength: number): Promise<{ hf: string; converted: string }> {
  const base = path.join(CACHE, 'models', name);
  const hf = path.join(base, 'hf');
  const converted = path.join(base, 'onnx');
  const stamp = path.join(base, 'options.json');
  const want = JSON.stringify({ options, contextLength, manifest: MANIFEST_VERSION }); // a new manifest version means converting again
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want && fs.existsSync(path.join(converted, 'manifest.json'))) return { hf, converted };
  fs.rmSync(base, { recursive: true, force: true });
  log(`writing and converting ${name} (once)...`);
  const t = now();
  await writeTinyCheckpoint(hf, options);
  await convertCheckpoint(hf, converted, { contextLength, force: true });
  fs.writeFileSync(stamp, want);
  log(`  ${fmt((now() - t) / 1000)} s`);
  return { hf, converted };
}

export function visionShape(config: Record<string, unknown>): VisionShape {
  const v = config.vision_config as Record<string, number>;
  const grid = v.image_size / v.patch_size;
  const select = (config.mm_vision_select_layer as number) ?? -2;
  return { hidden: v.hidden_size, intermediate: v.intermediate_size, blocks: v.num_hidden_layers + select + 1, patches: grid * grid, patchSize: v.patch_size };
}

/** A 336x336 picture with seeded noise over smooth gradients (every seed a different picture, so no cache hits). */
export function randomImage(seed: number, size = 336): RGB8 {
  const data = new Uint8Array(size * size * 3);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const i = (y * size + x) * 3;
      data[i] = (x + seed * 7) & 255;
      data[i + 1] = (y + seed * 13) & 255;
      data[i + 2] = (s >>> 0) & 255;
    }
  }
  return { width: size, height: size, data };
}

/** The LLaVA-Mini prompt (Llama-3.1 template, system prompt, <image> placeholder) for a question. */
export function promptIds(tokenizer: Tokenizer): number[] {
  return buildLlavaPrompt(tokenizer, 'What is shown in this picture? Describe the scene in detail.', { image: true, addAssistantHeader: true }).ids;
}

export interface StageMs {
  encoder: number;
  compressor: number;
  /** The projector's time where it runs alone (v1.5); LLaVA-Mini projects inside pre-fusion. */
  projector: number;
  embed: number;
  prefusion: number;
  prefill: number;
  /** From pixels to the first token's logits. */
  ttft: number;
  /** LLM input rows. */
  rows: number;
}

/** One image question through LLaVA-Mini's stages, timed per stage (pixels -> logits of the first token). */
export async function timeMini(parts: Pick<ModelParts, 'llm' | 'vision'>, ids: number[], img: RGB8, into?: Sequence): Promise<StageMs> {
  const { llm, vision } = parts;
  const t0 = now();
  const { features, encoderMs, compressorMs } = await vision.encode([img], false);
  const te = now();
  const text = await textEmbeds(parts, ids);
  const tf = now();
  const embeds = llmInput(ids, await vision.fuse(text, ids, features), llm.dtype);
  const seq = into ?? llm.sequence();
  const tp = now();
  await seq.prefill(embeds);
  const end = now();
  if (!into) seq.dispose();
  return { encoder: encoderMs, compressor: compressorMs, projector: 0, embed: tf - te, prefusion: tp - tf, prefill: end - tp, ttft: end - t0, rows: embeds.dims[1] };
}

/** Prompt token embeddings [L, H] as float32 (the placeholder looks up token 0, spec §3.2). */
async function textEmbeds(parts: Pick<ModelParts, 'llm' | 'vision'>, ids: readonly number[]): Promise<Float32Array> {
  return toFloat32(await parts.llm.embed(embeddingIds(ids)));
}

/**
 * The same question the LLaVA-v1.5 way on the same sessions: CLIP features -> projector -> all 576
 * tokens spliced in place of the placeholder -> LLM prefill. The encoder is the pipeline's (its
 * compressor call is not counted), the projector a graph built from the same checkpoint weights.
 */
export async function timeV15(parts: Pick<ModelParts, 'llm' | 'vision'>, projector: InferenceSession, ids: number[], img: RGB8): Promise<StageMs> {
  const t0 = now();
  const { features: [f], encoderMs, compressorMs } = await parts.vision.encode([img], false);
  const P = f.imageFeatures.length / parts.vision.config.hiddenSize;
  const tj = now();
  const out = await projector.run({ image_features: tensor('float32', [1, P, parts.vision.config.hiddenSize], f.imageFeatures) }, ['image_tokens']);
  const projectorMs = now() - tj;
  const te = now();
  const text = await textEmbeds(parts, ids);
  const embedMs = now() - te;
  // The same splice as LLaVA-Mini's, with the raw text embeddings and every projected patch.
  const embeds = llmInput(ids, { fusedText: text, visionTokens: (out.image_tokens as Tensor<'float32'>).data }, parts.llm.dtype);
  const rows = embeds.dims[1];
  const seq = parts.llm.sequence();
  const tp = now();
  await seq.prefill(embeds);
  const end = now();
  seq.dispose();
  // The compressor ran inside encode() but v1.5 has none: its time comes off the total.
  const ttft = end - t0 - compressorMs;
  return { encoder: encoderMs, compressor: 0, projector: projectorMs, embed: embedMs, prefusion: 0, prefill: end - tp, ttft, rows };
}
