import { castFloat, InvalidOptionError, type Tensor, tensor, toFloat32 } from '@llava-mini/core';
import type { Compressor } from '@llava-mini/compressor';
import { processFrame, processImage, type RGB8, stitchFeatures, type VisionConfig, type VisionEncoder } from '@llava-mini/encoder';
import { IMAGE_TOKEN_INDEX, type LlamaModel } from '@llava-mini/llm';
import type { Prefusion, PrefusionImage, PrefusionResult } from '@llava-mini/prefusion';

/** Milliseconds spent in each stage of one request. */
export interface StageTimings {
  encoderMs: number;
  compressorMs: number;
  embedMs: number;
  prefusionMs: number;
}

export const zeroTimings = (): StageTimings => ({ encoderMs: 0, compressorMs: 0, embedMs: 0, prefusionMs: 0 });

const now = (): number => globalThis.performance.now();

/** A content hash of decoded pixels, so the same picture is never encoded twice. */
export type PixelHasher = (img: RGB8) => string;

/**
 * The vision side of LLaVA-Mini, composed from the stage packages: pixels -> CLIP features ->
 * compressed features (cached per picture), and (features, prompt) -> vision tokens + fused text.
 */
export class VisionPipeline {
  private readonly cache = new Map<string, PrefusionImage>();
  /** Pictures encoded by CLIP since creation (tests use it to see the cache at work). */
  encoderRuns = 0;

  constructor(
    readonly config: VisionConfig,
    private readonly encoder: VisionEncoder,
    private readonly compressor: Compressor,
    private readonly prefusion: Prefusion,
    private readonly llm: LlamaModel,
    private readonly hash: PixelHasher,
    private readonly cacheLimit = 256,
    /** Pictures per batched CLIP call (video frames arrive one by one and are grouped). */
    readonly batchSize = 8,
  ) {}

  /** Vision tokens each picture adds to the LLM input (C*C). */
  get compressedTokens(): number {
    return this.compressor.config.queries;
  }

  /**
   * CLIP features and compressed features of pictures (images, or video frames when `frame`). Images
   * are cached by a hash of their pixels; video frames are not (a long video would flush the cache,
   * and a frame's features are dropped as soon as it is fused). What is not cached goes through CLIP
   * in one batched call (all pieces: HD crops, frames) and through the compressor in another.
   */
  async features(imgs: readonly RGB8[], frame: boolean, timings: StageTimings): Promise<PrefusionImage[]> {
    if (frame) return this.encode(imgs, true, timings);
    const keys = imgs.map((img) => this.hash(img));
    const missing = [...new Set(keys.filter((k) => !this.cache.has(k)))];
    if (missing.length) {
      const todo = missing.map((k) => imgs[keys.indexOf(k)]);
      const entries = await this.encode(todo, false, timings);
      missing.forEach((k, i) => {
        if (this.cache.size >= this.cacheLimit) this.cache.delete(this.cache.keys().next().value as string);
        this.cache.set(k, entries[i]);
      });
    }
    return keys.map((k) => this.cache.get(k) as PrefusionImage);
  }

  private async encode(imgs: readonly RGB8[], frame: boolean, timings: StageTimings): Promise<PrefusionImage[]> {
    const { resolutionRatio: N, gridSize: g, hiddenSize: D } = this.config;
    const batches = imgs.map((img) => (frame ? processFrame(img, this.config) : processImage(img, this.config)));
    const pieces = batches[0].pieces; // N*N + 1 with HD, else 1: the same for every picture
    const pixels = new Float32Array(batches.reduce((n, b) => n + b.data.length, 0));
    batches.forEach((b, i) => pixels.set(b.data, i * b.data.length));
    let t = now();
    const features = await this.encoder.encode(pixels, imgs.length * pieces); // [pictures * P, g*g, D]
    this.encoderRuns += imgs.length;
    timings.encoderMs += now() - t;
    const perPicture = pieces * g * g * D;
    const imageFeatures: Float32Array[] = [];
    const keyGrids: Float32Array[] = [];
    for (let i = 0; i < imgs.length; i++) {
      const f = features.subarray(i * perPicture, (i + 1) * perPicture);
      if (N === 1) {
        imageFeatures.push(f);
        keyGrids.push(f);
        continue;
      }
      // HD (spec §5): the N*N sub-image maps stitched into one grid feed the compressor; pre-fusion
      // sees the stitched grid followed by the global image's tokens.
      const s = stitchFeatures(f, N, g);
      const both = new Float32Array(s.grid.length + s.global.length);
      both.set(s.grid);
      both.set(s.global, s.grid.length);
      imageFeatures.push(both);
      keyGrids.push(s.grid);
    }
    const keys = new Float32Array(keyGrids.reduce((n, k) => n + k.length, 0));
    keyGrids.forEach((k, i) => keys.set(k, i * k.length));
    t = now();
    const compressed = await this.compressor.run(keys, imgs.length); // [pictures, C*C, D]
    timings.compressorMs += now() - t;
    const per = compressed.length / imgs.length;
    return imageFeatures.map((f, i) => ({ imageFeatures: f, compressed: compressed.subarray(i * per, (i + 1) * per) }));
  }

  /** Prompt token embeddings [L, H] as float32 (the placeholder looks up token 0, spec §3.2). */
  async textEmbeds(ids: readonly number[], timings: StageTimings): Promise<Float32Array> {
    const t = now();
    const e = await this.llm.embed(ids.map((id) => Math.max(id, 0)));
    timings.embedMs += now() - t;
    return toFloat32(e);
  }

  /** Pre-fusion of one or more pictures with the prompt: vision tokens concatenated, fused text averaged. */
  async fuse(ids: readonly number[], pictures: AsyncIterable<PrefusionImage> | Iterable<PrefusionImage>, timings: StageTimings & { inputMs?: number }): Promise<PrefusionResult> {
    const textEmbeds = await this.textEmbeds(ids, timings);
    // Streamed pictures are decoded and encoded while pre-fusion runs: their time is the other stages'.
    const others = () => timings.encoderMs + timings.compressorMs + (timings.inputMs ?? 0);
    const t = now();
    const before = others();
    const fused = await this.prefusion.fuseFrames(pictures, { textEmbeds, ids });
    timings.prefusionMs += now() - t - (others() - before);
    return fused;
  }

  /**
   * The LLM input (spec §4.5): fused text before the placeholder, the vision tokens, fused text
   * after it; the placeholder row itself is dropped. Without a placeholder the fused text is used whole.
   */
  assemble(ids: readonly number[], fused: PrefusionResult): Tensor {
    const H = this.llm.config.hiddenSize;
    const p = ids.indexOf(IMAGE_TOKEN_INDEX);
    if (p >= 0 && ids.indexOf(IMAGE_TOKEN_INDEX, p + 1) >= 0) throw new InvalidOptionError('a prompt may hold one <image> placeholder');
    const text = fused.fusedText;
    const out = p < 0 ? text : new Float32Array(text.length - H + fused.visionTokens.length);
    if (p >= 0) {
      out.set(text.subarray(0, p * H));
      out.set(fused.visionTokens, p * H);
      out.set(text.subarray((p + 1) * H), p * H + fused.visionTokens.length);
    }
    return castFloat(tensor('float32', [1, out.length / H, H], out), this.llm.dtype);
  }
}
