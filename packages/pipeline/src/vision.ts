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
  ) {}

  /** Vision tokens each picture adds to the LLM input (C*C). */
  get compressedTokens(): number {
    return this.compressor.config.queries;
  }

  /** CLIP features and compressed features of one picture (an image, or a video frame when `frame`). */
  async features(img: RGB8, frame: boolean, timings: StageTimings): Promise<PrefusionImage> {
    const key = `${frame ? 'frame' : 'image'}:${this.hash(img)}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const N = this.config.resolutionRatio;
    const pixels = frame ? processFrame(img, this.config) : processImage(img, this.config);
    let t = now();
    const features = await this.encoder.encode(pixels.data, pixels.pieces); // [P, g*g, D]
    this.encoderRuns++;
    timings.encoderMs += now() - t;
    let imageFeatures = features;
    let keys = features;
    if (N > 1) {
      // HD (spec §5): the N*N sub-image maps stitched into one grid feed the compressor; pre-fusion
      // sees the stitched grid followed by the global image's tokens.
      const s = stitchFeatures(features, N, this.config.gridSize);
      keys = s.grid;
      imageFeatures = new Float32Array(s.grid.length + s.global.length);
      imageFeatures.set(s.grid);
      imageFeatures.set(s.global, s.grid.length);
    }
    t = now();
    const compressed = await this.compressor.run(keys, 1);
    timings.compressorMs += now() - t;
    const entry = { imageFeatures, compressed };
    if (this.cache.size >= this.cacheLimit) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, entry);
    return entry;
  }

  /** Prompt token embeddings [L, H] as float32 (the placeholder looks up token 0, spec §3.2). */
  async textEmbeds(ids: readonly number[], timings: StageTimings): Promise<Float32Array> {
    const t = now();
    const e = await this.llm.embed(ids.map((id) => Math.max(id, 0)));
    timings.embedMs += now() - t;
    return toFloat32(e);
  }

  /** Pre-fusion of one or more pictures with the prompt: vision tokens concatenated, fused text averaged. */
  async fuse(ids: readonly number[], pictures: AsyncIterable<PrefusionImage> | Iterable<PrefusionImage>, timings: StageTimings): Promise<PrefusionResult> {
    const textEmbeds = await this.textEmbeds(ids, timings);
    const t = now();
    const fused = await this.prefusion.fuseFrames(pictures, { textEmbeds, ids });
    timings.prefusionMs += now() - t;
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
