import type { Compressor } from '@llava-mini/compressor';
import { processFrame, processImage, type RGB8, stitchFeatures, type VisionConfig, type VisionEncoder } from '@llava-mini/encoder';
import type { Prefusion, PrefusionImage, PrefusionResult } from '@llava-mini/prefusion';

const now = (): number => globalThis.performance.now();

/** Pictures through CLIP and the compressor, with the time each took. */
export interface EncodedPictures {
  features: PrefusionImage[];
  encoderMs: number;
  compressorMs: number;
}

/**
 * The vision stages of LLaVA-Mini, composed from the stage packages and holding only their
 * sessions: pixels -> CLIP features -> compressed features, and (features, prompt) -> vision tokens
 * + fused text. Which pictures a conversation has, and their features, belong to the conversation.
 */
export class VisionPipeline {
  /** Pictures encoded by CLIP since creation (a counter for tests and benches, not state). */
  encoderRuns = 0;

  constructor(
    readonly config: VisionConfig,
    private readonly encoder: VisionEncoder,
    private readonly compressor: Compressor,
    private readonly prefusion: Prefusion,
    /** Pictures per batched CLIP call (video frames arrive one by one and are grouped). */
    readonly batchSize = 8,
  ) {}

  /** Vision tokens each picture adds to the LLM input (C*C). */
  get compressedTokens(): number {
    return this.compressor.config.queries;
  }

  /**
   * CLIP features and compressed features of pictures (images, or video frames when `frame`): all
   * pieces (HD crops, frames) through CLIP in one batched call, the key grids through the
   * compressor in another.
   */
  async encode(imgs: readonly RGB8[], frame: boolean): Promise<EncodedPictures> {
    const { resolutionRatio: N, gridSize: g, hiddenSize: D } = this.config;
    const batches = imgs.map((img) => (frame ? processFrame(img, this.config) : processImage(img, this.config)));
    const pieces = batches[0].pieces; // N*N + 1 with HD, else 1: the same for every picture
    const pixels = new Float32Array(batches.reduce((n, b) => n + b.data.length, 0));
    batches.forEach((b, i) => pixels.set(b.data, i * b.data.length));
    let t = now();
    const features = await this.encoder.encode(pixels, imgs.length * pieces); // [pictures * P, g*g, D]
    this.encoderRuns += imgs.length;
    const encoderMs = now() - t;
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
    const compressorMs = now() - t;
    const per = compressed.length / imgs.length;
    return { features: imageFeatures.map((f, i) => ({ imageFeatures: f, compressed: compressed.subarray(i * per, (i + 1) * per) })), encoderMs, compressorMs };
  }

  /**
   * Pre-fusion of one or more pictures with the prompt's text embeddings [L, H] (float32, the
   * placeholder row looking up token 0, spec §3.2): vision tokens concatenated, fused text averaged.
   */
  fuse(textEmbeds: Float32Array, ids: readonly number[], pictures: AsyncIterable<PrefusionImage> | Iterable<PrefusionImage>): Promise<PrefusionResult> {
    return this.prefusion.fuseFrames(pictures, { textEmbeds, ids });
  }
}
