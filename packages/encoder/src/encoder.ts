import {
  type Backend,
  type DeviceRequest,
  f32ArrayToF16,
  hasOutput,
  InvalidOptionError,
  type InferenceSession,
  type ModelSource,
  SessionError,
  tensor,
  toFloat32,
  type WeightFormat,
  type WeightSource,
} from '@llava-mini/core';
import type { VisionConfig } from './config.js';
import { buildEncoderGraph, ENCODER_INPUT, ENCODER_OUTPUT } from './graph.js';

export interface VisionEncoderOptions {
  config: VisionConfig;
  device?: DeviceRequest;
  logger?: (message: string) => void;
  /** Pieces per session run; larger batches are split (default: all in one run). */
  maxBatch?: number;
}

/**
 * The CLIP tower as a session: pixels [P, 3, S, S] in, features [P, tokens, D] out, float32 on the
 * JS side whatever the graph computes in.
 */
export class VisionEncoder {
  private constructor(
    private readonly session: InferenceSession,
    readonly config: VisionConfig,
    /** The graph's pixel dtype, as its session reports it. */
    readonly dtype: 'float32' | 'float16',
    private readonly maxBatch: number,
  ) {}

  static async create(backend: Backend, model: ModelSource, options: VisionEncoderOptions): Promise<VisionEncoder> {
    const { config } = options;
    if (!config) throw new InvalidOptionError('VisionEncoder.create needs options.config (readVisionConfig(config.json))');
    const maxBatch = options.maxBatch ?? Infinity;
    if (!(maxBatch === Infinity || (Number.isSafeInteger(maxBatch) && maxBatch > 0))) throw new InvalidOptionError(`maxBatch must be a positive integer, got ${maxBatch}`);
    const session = await backend.createSession(model, { device: options.device, logger: options.logger });
    // The graph says what it computes in: float16 graphs get their pixels converted.
    const pixels = session.inputs.find((v) => v.name === ENCODER_INPUT);
    if (!pixels || !hasOutput(session, ENCODER_OUTPUT)) {
      await session.dispose();
      throw new SessionError(`the model is not a vision encoder: it needs input '${ENCODER_INPUT}' and output '${ENCODER_OUTPUT}'`);
    }
    return new VisionEncoder(session, config, pixels.dtype === 'float16' ? 'float16' : 'float32', maxBatch);
  }

  get device(): string {
    return this.session.device;
  }

  /** Features of `pieces` images at once: `pixels` is [pieces, 3, S, S], the result [pieces, tokens, D]. */
  async encode(pixels: Float32Array, pieces: number): Promise<Float32Array> {
    const { imageSize: S, tokens, hiddenSize: D } = this.config;
    const perPiece = 3 * S * S;
    if (!Number.isSafeInteger(pieces) || pieces <= 0) throw new InvalidOptionError(`pieces must be a positive integer, got ${pieces}`);
    if (!(pixels instanceof Float32Array) || pixels.length !== pieces * perPiece) {
      throw new InvalidOptionError(`pixels for ${pieces} piece(s) of ${S}x${S} must be a Float32Array of ${pieces * perPiece} values, got ${pixels?.length}`);
    }
    const out = new Float32Array(pieces * tokens * D);
    for (let first = 0; first < pieces; first += this.maxBatch) {
      const n = Math.min(this.maxBatch, pieces - first);
      const chunk = pixels.subarray(first * perPiece, (first + n) * perPiece);
      const input = this.dtype === 'float16' ? tensor('float16', [n, 3, S, S], f32ArrayToF16(chunk)) : tensor('float32', [n, 3, S, S], chunk);
      const result = await this.session.run({ [ENCODER_INPUT]: input }, [ENCODER_OUTPUT]);
      const features = toFloat32(result[ENCODER_OUTPUT]);
      if (features.length !== n * tokens * D) {
        throw new SessionError(`the encoder returned ${features.length} values, expected [${n}, ${tokens}, ${D}]: the model does not match the config`);
      }
      out.set(features, first * tokens * D);
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.dispose();
  }
}

/**
 * Build the graph from checkpoint tensors in memory and load it (for towers under protobuf's 2 GB).
 * A function rather than a static method, so a bundle that only loads converted models leaves the
 * graph builder (and protobufjs) out.
 */
export async function encoderFromWeights(backend: Backend, src: WeightSource, options: VisionEncoderOptions & { format?: WeightFormat; prefix?: string }): Promise<VisionEncoder> {
  const bytes = buildEncoderGraph(src, options.config, { format: options.format, prefix: options.prefix }).toBytes();
  return VisionEncoder.create(backend, bytes, options);
}
