import {
  type Backend,
  castFloat,
  type Device,
  type DeviceRequest,
  hasOutput,
  type InferenceSession,
  InvalidOptionError,
  type ModelSource,
  SessionError,
  type SessionOptions,
  tensor,
  toFloat32,
} from '@llava-mini/core';
import type { CompressorConfig } from './config.js';
import { COMPRESSOR_INPUT as INPUT, COMPRESSOR_OUTPUT as OUTPUT } from './graph.js';

export interface CompressorOptions extends Omit<SessionOptions, 'device'> {
  device?: DeviceRequest;
  config: CompressorConfig;
}

/**
 * A loaded compressor graph: CLIP patch features in, C*C compressed vectors per image out (float32
 * on the JS side). Its dtype and key grid are read from the session's input.
 */
export class Compressor {
  private constructor(
    private readonly session: InferenceSession,
    readonly config: CompressorConfig,
    /** The graph's I/O dtype: float16 graphs get converted I/O. */
    readonly dtype: 'float32' | 'float16',
    /** s, when the graph fixes its s*s tokens per image: inputs are checked against it before they reach the runtime. */
    readonly keyGrid: number | undefined,
  ) {}

  static async create(backend: Backend, model: ModelSource, options: CompressorOptions): Promise<Compressor> {
    const { config, ...sessionOptions } = options;
    const session = await backend.createSession(model, sessionOptions);
    const input = session.inputs.find((v) => v.name === INPUT);
    if (!input || !hasOutput(session, OUTPUT)) {
      await session.dispose();
      throw new SessionError(`the model is not a query compressor: it needs input '${INPUT}' and output '${OUTPUT}'`);
    }
    return new Compressor(session, config, input.dtype === 'float16' ? 'float16' : 'float32', gridSide(input.dims[1]));
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
    const out = await this.session.run({ [INPUT]: input }, [OUTPUT]);
    return toFloat32(out[OUTPUT]);
  }

  dispose(): Promise<void> {
    return this.session.dispose();
  }
}

/** s from the graph's token dimension s*s (undefined when it is symbolic or not a square). */
function gridSide(tokens: number | string | undefined): number | undefined {
  if (typeof tokens !== 'number') return undefined;
  const s = Math.round(Math.sqrt(tokens));
  return s * s === tokens ? s : undefined;
}
