import {
  type Backend,
  castFloat,
  type Device,
  type DeviceRequest,
  type InferenceSession,
  InvalidOptionError,
  type ModelSource,
  type SessionOptions,
  tensor,
  toFloat32,
} from '@llava-mini/core';
import { DEFAULT_MAX_POSITIONS, type PrefusionConfig, readPrefusionConfig } from './config.js';
import { type PrefusionInputs, prefusionInputs } from './inputs.js';

export interface PrefusionOptions extends Omit<SessionOptions, 'device'> {
  device?: DeviceRequest;
  /** config.json of the checkpoint the graph was built from. */
  json: Record<string, unknown>;
  /** The graph's activation dtype (what it was built with); float16 graphs get converted I/O. Default float32. */
  dtype?: 'float32' | 'float16';
  /** The graph's RoPE cache rows (what it was built with; default DEFAULT_MAX_POSITIONS). */
  maxPositions?: number;
}

/** The prompt side of a pre-fusion call, shared by every frame of a video. */
export interface PrefusionText {
  /** [L, H] embed_tokens(max(ids, 0)), float32. */
  textEmbeds: Float32Array;
  /** Prompt ids, -200 at the image placeholder. */
  ids: readonly number[];
}

/** One image's (or video frame's) features. */
export interface PrefusionImage {
  /** [M, D] CLIP features (HD: stitched sub-image tokens, then the global image's). */
  imageFeatures: Float32Array;
  /** [C*C, D] compressor output. */
  compressed: Float32Array;
}

export interface PrefusionResult {
  /** [C*C, H] (video: [frames*C*C, H], frames in order) */
  visionTokens: Float32Array;
  /** [L, H]; rows at ids <= 0 are the raw embeddings (spec §3.3). Video: the mean over frames. */
  fusedText: Float32Array;
}

/** A loaded pre-fusion graph: image features, compressed features and prompt embeddings in, vision tokens and fused text out. */
export class Prefusion {
  private constructor(
    private readonly session: InferenceSession,
    readonly config: PrefusionConfig,
    readonly dtype: 'float32' | 'float16',
    readonly maxPositions: number,
  ) {}

  static async create(backend: Backend, model: ModelSource, options: PrefusionOptions): Promise<Prefusion> {
    const { json, dtype = 'float32', maxPositions = DEFAULT_MAX_POSITIONS, ...sessionOptions } = options;
    if (dtype !== 'float32' && dtype !== 'float16') throw new InvalidOptionError(`dtype must be 'float32' or 'float16', got ${JSON.stringify(dtype)}`);
    const config = readPrefusionConfig(json);
    const session = await backend.createSession(model, sessionOptions);
    return new Prefusion(session, config, dtype, maxPositions);
  }

  get device(): Device {
    return this.session.device;
  }

  /** One image: spec §3.2-3.3. */
  async run(input: PrefusionImage & PrefusionText): Promise<PrefusionResult> {
    const shape = this.check(input, input);
    return this.runOne(input, input, prefusionInputs(input.ids, shape.M, shape.CC, this.dtype));
  }

  /**
   * A video (spec §6.2): one pre-fusion pass per frame with the whole prompt; vision tokens are
   * concatenated in frame order, fused text is the float32 mean over frames, kept as a running sum
   * so no frame's activations outlive its pass.
   */
  async fuseFrames(frames: AsyncIterable<PrefusionImage> | Iterable<PrefusionImage>, text: PrefusionText): Promise<PrefusionResult & { frames: number }> {
    const H = this.config.llama.hiddenSize;
    const sum = new Float32Array(text.ids.length * H);
    const vision: Float32Array[] = [];
    let masks: { M: number; CC: number; inputs: PrefusionInputs } | undefined;
    for await (const frame of frames) {
      const { M, CC } = this.check(frame, text);
      if (!masks || masks.M !== M || masks.CC !== CC) masks = { M, CC, inputs: prefusionInputs(text.ids, M, CC, this.dtype) };
      const { visionTokens, fusedText } = await this.runOne(frame, text, masks.inputs);
      vision.push(visionTokens);
      for (let i = 0; i < sum.length; i++) sum[i] += fusedText[i];
    }
    if (vision.length === 0) throw new InvalidOptionError('fuseFrames got no frames');
    const visionTokens = new Float32Array(vision.reduce((n, v) => n + v.length, 0));
    vision.reduce((offset, v) => (visionTokens.set(v, offset), offset + v.length), 0);
    for (let i = 0; i < sum.length; i++) sum[i] /= vision.length;
    return { visionTokens, fusedText: sum, frames: vision.length };
  }

  dispose(): Promise<void> {
    return this.session.dispose();
  }

  private async runOne(image: PrefusionImage, text: PrefusionText, inputs: PrefusionInputs): Promise<PrefusionResult> {
    const { hiddenSize: H } = this.config.llama;
    const D = this.config.visionHidden;
    const L = text.ids.length;
    const T = inputs.valid.length;
    const float = (dims: number[], data: Float32Array) => castFloat(tensor('float32', dims, data), this.dtype);
    const out = await this.session.run(
      {
        image_features: float([1, image.imageFeatures.length / D, D], image.imageFeatures),
        compressed: float([1, image.compressed.length / D, D], image.compressed),
        text_embeds: float([1, L, H], text.textEmbeds),
        position_ids: tensor('int64', [1, T], inputs.positionIds),
        attention_bias: float([1, 1, T, T], inputs.attentionBias),
      },
      ['vision_tokens', 'fused_text'],
    );
    const visionTokens = toFloat32(out.vision_tokens);
    const fusedText = Float32Array.from(toFloat32(out.fused_text));
    // Padding rows (the placeholder, token id 0) were neither fused nor attended: keep their embedding.
    text.ids.forEach((id, t) => {
      if (id <= 0) fusedText.set(text.textEmbeds.subarray(t * H, (t + 1) * H), t * H);
    });
    return { visionTokens, fusedText };
  }

  /** Validate sizes before they reach the runtime, so a mistake names the input at fault. */
  private check(image: PrefusionImage, text: PrefusionText): { M: number; CC: number } {
    const { hiddenSize: H } = this.config.llama;
    const D = this.config.visionHidden;
    const rows = (name: string, data: Float32Array, width: number) => {
      if (!(data instanceof Float32Array) || data.length === 0 || data.length % width !== 0) {
        throw new InvalidOptionError(`${name} must be a non-empty Float32Array of rows of width ${width}, got ${data?.length} values`);
      }
      return data.length / width;
    };
    const M = rows('imageFeatures', image.imageFeatures, D);
    const CC = rows('compressed', image.compressed, D);
    const L = rows('textEmbeds', text.textEmbeds, H);
    if (L !== text.ids.length) throw new InvalidOptionError(`textEmbeds has ${L} rows but the prompt has ${text.ids.length} ids`);
    const T = M + CC + L;
    if (T > this.maxPositions) throw new InvalidOptionError(`${T} pre-fusion rows exceed the graph's ${this.maxPositions} RoPE positions (build it with a larger maxPositions)`);
    return { M, CC };
  }
}
