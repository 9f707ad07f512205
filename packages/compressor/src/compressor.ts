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
import type { CompressorConfig } from './config.js';

export interface CompressorOptions extends Omit<SessionOptions, 'device'> {
  device?: DeviceRequest;
  config: CompressorConfig;
  /** The graph's activation dtype (what it was built with); float16 graphs get converted I/O. Default float32. */
  dtype?: 'float32' | 'float16';
  /** s, when known: inputs are then checked to hold s*s tokens per image before they reach the runtime. */
  keyGrid?: number;
}

/** A loaded compressor graph: CLIP patch features in, C*C compressed vectors per image out (float32 on the JS side). */
export class Compressor {
  private constructor(
    private readonly session: InferenceSession,
    readonly config: CompressorConfig,
    readonly dtype: 'float32' | 'float16',
    readonly keyGrid: number | undefined,
  ) {}

  static async create(backend: Backend, model: ModelSource, options: CompressorOptions): Promise<Compressor> {
    const { config, dtype = 'float32', keyGrid, ...sessionOptions } = options;
    if (dtype !== 'float32' && dtype !== 'float16') throw new InvalidOptionError(`dtype must be 'float32' or 'float16', got ${JSON.stringify(dtype)}`);
    const session = await backend.createSession(model, sessionOptions);
    return new Compressor(session, config, dtype, keyGrid);
  }

  get device(): Device {
    return this.session.device;
  }

  /** features [batch, M, D] (row-major) -> compressed [batch, C*C, D]. */
  async run(features: Float32Array, batch = 1): Promise<Float32Array> {
    const D = this.config.hidden;
    if (!Number.isInteger(batch) || batch < 1) throw new InvalidOptionError(`batch must be a positive integer, got ${batch}`);
    if (features.length === 0 || features.length % (batch * D) !== 0) {
      throw new InvalidOptionError(`features hold ${features.length} values, not a whole number of [${batch}, M, ${D}] rows`);
    }
    const tokens = features.length / (batch * D);
    const s = this.keyGrid;
    if (s !== undefined && tokens !== s * s) throw new InvalidOptionError(`the compressor was built for ${s}x${s} = ${s * s} tokens per image, got ${tokens}`);
    const input = castFloat(tensor('float32', [batch, tokens, D], features), this.dtype);
    const out = await this.session.run({ image_features: input }, ['compressed']);
    return toFloat32(out.compressed);
  }

  dispose(): Promise<void> {
    return this.session.dispose();
  }
}
