import type { Compressor } from '@llava-mini/compressor';
import { AbortError, now, type ProgressCallback } from '@llava-mini/core';
import { processFrame, processImage, type RGB8, stitchFeatures, type VisionConfig, type VisionEncoder } from '@llava-mini/encoder';
import type { FusedFrames, PicturePrefix, Prefusion, PrefusionImage, PrefusionPicture } from '@llava-mini/prefusion';
import { DEFAULT_PICTURE_CACHE_BYTES, PictureCache, pictureKey } from './picture-cache.js';

/** Videos whose frames' keys a model remembers (VisionPipeline.knownVideo). */
const MAX_VIDEOS = 1024;

/** Pictures through CLIP and the compressor, with the time each took. */
export interface EncodedPictures {
  features: PrefusionImage[];
  encoderMs: number;
  compressorMs: number;
}

/** Milliseconds spent getting pictures ready for pre-fusion. */
export interface PictureTimings {
  /** Decoding the input, waiting for video frames, hashing images' pixels. */
  inputMs: number;
  encoderMs: number;
  compressorMs: number;
}

/**
 * Video frames for pre-fusion, a batch at a time as it reads them: the cached prefix of each frame
 * the model has seen, the others encoded (and their features dropped after their pass).
 * `timings` grows while the stream is read and is complete once it has ended.
 */
export interface FrameStream extends AsyncIterable<PrefusionPicture> {
  readonly timings: Readonly<PictureTimings>;
}

/** Images ready for pre-fusion: cached prefixes where the model has seen the pixels, else fresh features. */
export interface LookedAtImages extends Omit<EncodedPictures, 'features'> {
  pictures: PrefusionPicture[];
  /** Time spent hashing the pixels (the cache key). */
  hashMs: number;
}

/**
 * The vision stages of LLaVA-Mini, composed from the stage packages and holding only their
 * sessions: pixels -> CLIP features -> compressed features, and (features, prompt) -> vision tokens
 * + fused text. Which pictures a conversation has, and their features, belong to the conversation.
 * `pictures` memoizes what the pixels alone determine (each image's pre-fusion prefix, see
 * PictureCache), so a question about a picture any conversation has shown runs only its text rows.
 */
export class VisionPipeline {
  /** Pictures encoded by CLIP since creation (a counter for tests and benches, not state). */
  encoderRuns = 0;
  /** Per-picture pre-fusion prefixes, by SHA-256 of the pixels (images', and video frames' apart). */
  readonly pictures: PictureCache;
  /** The cache key of each fresh image's features, until its prefix is stored. */
  private readonly pending = new WeakMap<PrefusionImage, string>();
  /**
   * Videos read to the end: each one's key (Pictures' `key`: its content and sampling) and its
   * frames' picture-cache keys, so the next look takes the frames from the picture cache without
   * decoding. Small (a key per frame); the oldest are forgotten past MAX_VIDEOS.
   */
  private readonly videos = new Map<string, string[]>();

  constructor(
    readonly config: VisionConfig,
    private readonly encoder: VisionEncoder,
    private readonly compressor: Compressor,
    private readonly prefusion: Prefusion,
    /** Pictures per batched CLIP call (video frames arrive one by one and are grouped). */
    readonly batchSize = 8,
    /** Bound of the picture cache in bytes (0 turns it off). */
    pictureCacheBytes = DEFAULT_PICTURE_CACHE_BYTES,
  ) {
    this.pictures = new PictureCache(pictureCacheBytes);
  }

  /**
   * Images for pre-fusion: the cached prefix of each one seen before (no CLIP, no compressor, no
   * picture rows in pre-fusion), the others through `encode` in one batch. `fuse` stores the fresh
   * ones' prefixes when it is given `onPrefix`.
   */
  async images(imgs: readonly RGB8[]): Promise<LookedAtImages> {
    return this.lookUp(imgs, false);
  }

  /** How many frames the video `key` has, when the picture cache still holds every one (a look needs no decoding). */
  knownVideo(key: string): number | undefined {
    const frames = this.videos.get(key);
    return frames?.every((k) => this.pictures.has(k)) ? frames.length : undefined;
  }

  /** Pictures (video frames when `frame`: their preprocessing differs, so their keys do too) from the picture cache, else encoded. */
  private async lookUp(imgs: readonly RGB8[], frame: boolean): Promise<LookedAtImages & { keys: (string | undefined)[] }> {
    const t = now();
    // With the cache off there is nothing to look up: no pixels are hashed (every video frame would be).
    const keys = this.pictures.maxBytes === 0 ? imgs.map(() => undefined) : await Promise.all(imgs.map(async (img) => {
      const key = await pictureKey(img);
      return key && frame ? `frame:${key}` : key;
    }));
    const hashMs = now() - t;
    const pictures: (PrefusionPicture | undefined)[] = keys.map((k) => (k === undefined ? undefined : this.pictures.get(k)));
    const missing = imgs.filter((_, i) => pictures[i] === undefined);
    if (missing.length === 0) return { pictures: pictures as PrefusionPicture[], keys, hashMs, encoderMs: 0, compressorMs: 0 };
    const e = await this.encode(missing, frame);
    let j = 0;
    pictures.forEach((p, i) => {
      if (p) return;
      const f = e.features[j++];
      if (keys[i] !== undefined) this.pending.set(f, keys[i] as string);
      pictures[i] = f;
    });
    return { pictures: pictures as PrefusionPicture[], keys, hashMs, encoderMs: e.encoderMs, compressorMs: e.compressorMs };
  }

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
   * Video frames (`count` of them, already decoded one by one) as a stream pre-fusion can read:
   * grouped into batches of `batchSize`, each frame looked up in the picture cache by its pixels
   * and the others through CLIP and the compressor, so memory holds one batch of frames whatever the
   * video's length. Like `frames`, it can be read once. With the video's `key`: a video whose frames
   * the picture cache holds from an earlier look is streamed from there, and `frames` is not read
   * (nothing decoded); one read to its end is remembered under its key.
   */
  frames(frames: AsyncIterable<RGB8>, count: number, options: { signal?: AbortSignal; onProgress?: ProgressCallback; key?: string } = {}): FrameStream {
    const timings: PictureTimings = { inputMs: 0, encoderMs: 0, compressorMs: 0 };
    const { key } = options;
    // knownVideo has just seen every frame held: take them now, before anything can evict them.
    const held = key !== undefined && this.knownVideo(key) !== undefined ? (this.videos.get(key) as string[]).map((k) => this.pictures.get(k) as PicturePrefix) : undefined;
    if (held) {
      async function* cached(): AsyncGenerator<PrefusionPicture> {
        yield* held as PicturePrefix[];
        options.onProgress?.({ task: 'video', done: count, total: count, unit: 'frames' });
      }
      return { timings, [Symbol.asyncIterator]: cached };
    }
    const frameKeys: (string | undefined)[] = [];
    const remember = () => {
      if (key === undefined || frameKeys.length !== count || frameKeys.includes(undefined)) return;
      this.videos.delete(key);
      this.videos.set(key, frameKeys as string[]);
      for (const old of this.videos.keys()) if (this.videos.size > MAX_VIDEOS) this.videos.delete(old);
    };
    const encode = async (batch: RGB8[], done: number) => {
      const e = await this.lookUp(batch, true);
      frameKeys.push(...e.keys);
      timings.inputMs += e.hashMs;
      timings.encoderMs += e.encoderMs;
      timings.compressorMs += e.compressorMs;
      options.onProgress?.({ task: 'video', done, total: count, unit: 'frames' });
      return e.pictures;
    };
    const batchSize = this.batchSize;
    async function* stream(): AsyncGenerator<PrefusionPicture> {
      let batch: RGB8[] = [];
      let done = 0;
      // Time spent waiting for the next decoded frame counts as input time.
      let waitStart = now();
      for await (const img of frames) {
        timings.inputMs += now() - waitStart;
        if (options.signal?.aborted) throw new AbortError('reading the video was aborted');
        batch.push(img);
        if (batch.length >= batchSize) {
          done += batch.length;
          yield* await encode(batch.splice(0), done);
        }
        waitStart = now();
      }
      if (batch.length) yield* await encode(batch, done + batch.length);
      remember();
    }
    return { timings, [Symbol.asyncIterator]: stream };
  }

  /**
   * A video frame's pre-fusion prefix, made now and not at a question: through CLIP, the compressor
   * and pre-fusion's picture rows. Pre-fusion's picture rows come before the prompt and attend only
   * to each other, so any later question about the frame runs only its own rows after this. The
   * picture cache is left alone: a live stream's frames are seen once, and at a frame a second they
   * would soon push every other picture out of it.
   */
  async framePrefix(img: RGB8): Promise<PicturePrefix> {
    const e = await this.encode([img], true);
    return this.prefusion.prefix(e.features[0]);
  }

  /**
   * Pre-fusion of one or more pictures (features, or prefixes from `images`) with the prompt's text
   * embeddings [L, H] (float32, the placeholder row looking up token 0, spec §3.2): vision tokens
   * concatenated, fused text averaged. Each fresh picture's prefix is fetched and stored in the
   * picture cache (where it is on) and, with `onPrefix`, handed over, so the caller can keep it; with
   * `onState`, each picture's state after the prompt (Prefusion's FuseOptions.onState), where the
   * graph gives one.
   */
  fuse(
    textEmbeds: Float32Array,
    ids: readonly number[],
    pictures: AsyncIterable<PrefusionPicture> | Iterable<PrefusionPicture>,
    { onPrefix, onState }: { onPrefix?: (prefix: PicturePrefix, index: number) => void; onState?: (state: PicturePrefix, index: number) => void } = {},
  ): Promise<FusedFrames> {
    const store = onPrefix !== undefined || this.pictures.maxBytes > 0;
    const keep = store ? (prefix: PicturePrefix, picture: PrefusionImage, index: number) => {
      const key = this.pending.get(picture);
      if (key !== undefined) this.pictures.set(key, prefix);
      onPrefix?.(prefix, index);
    } : undefined;
    return this.prefusion.fuseFrames(pictures, { textEmbeds, ids }, { onPrefix: keep, onState });
  }
}
