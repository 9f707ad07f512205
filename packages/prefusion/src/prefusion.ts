import {
  type Backend,
  type Device,
  type DeviceRequest,
  hasInput,
  hasOutput,
  type InferenceSession,
  InvalidOptionError,
  type ModelSource,
  now,
  SessionError,
  type SessionOptions,
  type Tensor,
  tensor,
} from '@llava-mini/core';
import { DEFAULT_MAX_POSITIONS, type PrefusionConfig } from './config.js';
import { PREFUSION_IO } from './graph.js';
import { keptRows } from './inputs.js';

export interface PrefusionOptions extends Omit<SessionOptions, 'device'> {
  device?: DeviceRequest;
  /** The settings the graph was built with (`readPrefusionConfig(config.json)`). */
  config: PrefusionConfig;
  /** The graph's RoPE cache rows (what it was built with; default DEFAULT_MAX_POSITIONS). */
  maxPositions?: number;
}

/** The prompt side of a pre-fusion call, shared by every picture. */
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

/**
 * What pre-fusion keeps of a picture: its vision tokens and, per pre-fusion layer, the keys and
 * values of its P = M + C*C rows (RoPE applied, the graph's dtype). Any prompt about the picture
 * runs only its own rows after this prefix. A conversation's state has the same shape: the
 * picture's rows, then the kept rows of every prompt so far (FuseOptions.onState), so its next
 * prompt runs only its own rows. Immutable once made: the runtime never writes into it.
 */
export interface PicturePrefix {
  /** [C*C, H] float32: the pre-fusion outputs at the compressed slots (spec §3.3). */
  readonly visionTokens: Float32Array;
  /** Per layer [1, kvHeads, P, headDim]. */
  readonly keys: readonly Tensor[];
  readonly values: readonly Tensor[];
  /** P: the rows the keys and values hold (the picture's, and a state's prompt rows after them). */
  readonly rows: number;
  /** Bytes held (vision tokens, keys and values). */
  readonly bytes: number;
}

/** A picture for pre-fusion: its features (first look) or its prefix (seen before). */
export type PrefusionPicture = PrefusionImage | PicturePrefix;

export interface PrefusionResult {
  /** [C*C, H] (several pictures: [pictures*C*C, H], in order) */
  visionTokens: Float32Array;
  /** [L, H]; rows at ids <= 0 are the raw embeddings (spec §3.3). Several pictures: the mean over them. */
  fusedText: Float32Array;
}

/** What fuseFrames returns: the fused prompt, how many pictures went in, and the time pre-fusion took. */
export interface FusedFrames extends PrefusionResult {
  frames: number;
  /**
   * Milliseconds of pre-fusion's own work (its graph runs, the mean): measured around it, so the
   * time a streamed source takes to hand over its next picture is not counted.
   */
  ms: number;
}

export interface FuseOptions {
  /**
   * Called with the prefix of each picture that came as features, so the caller can cache it
   * (images). Without it, no prefix is fetched and each picture's rows are dropped after its pass
   * (video frames: nothing of a frame outlives it but its vision tokens and the running sum).
   */
  onPrefix?: (prefix: PicturePrefix, picture: PrefusionImage, index: number) => void;
  /**
   * Called with each picture's state after this prompt: what it was given (features or a prefix or
   * an earlier state) continued through the prompt's kept rows, for a next prompt that carries on
   * after this one (a conversation's follow-up). Only where the graph returns it (`continues`).
   */
  onState?: (state: PicturePrefix, index: number) => void;
}

const isPrefix = (p: PrefusionPicture): p is PicturePrefix => 'keys' in p;

/** A loaded pre-fusion graph: pictures (features or cached prefixes) and a prompt in, vision tokens and fused text out. */
export class Prefusion {
  private constructor(
    private readonly session: InferenceSession,
    readonly config: PrefusionConfig,
    /** The graph's activation dtype, as its session reports it: the dtype of the keys/values it hands out. */
    readonly dtype: 'float32' | 'float16',
    readonly maxPositions: number,
  ) {}

  /** Whether the graph returns a picture's state after a prompt (FuseOptions.onState): graphs converted before it did do not. */
  get continues(): boolean {
    return this.config.layers === 0 || hasOutput(this.session, PREFUSION_IO.stateKey(0));
  }

  static async create(backend: Backend, model: ModelSource, options: PrefusionOptions): Promise<Prefusion> {
    const { config, maxPositions = DEFAULT_MAX_POSITIONS, ...sessionOptions } = options;
    const session = await backend.createSession(model, sessionOptions);
    if (!hasInput(session, PREFUSION_IO.textEmbeds) || !hasOutput(session, PREFUSION_IO.fusedText)) {
      await session.dispose();
      throw new SessionError(`the model is not a pre-fusion graph: it needs input '${PREFUSION_IO.textEmbeds}' and output '${PREFUSION_IO.fusedText}'`);
    }
    // The layers' past keys are in the graph's dtype; with no layers there are none, and no dtype to match.
    const past = session.inputs.find((v) => v.name === PREFUSION_IO.pastKey(0));
    return new Prefusion(session, config, past?.dtype === 'float16' ? 'float16' : 'float32', maxPositions);
  }

  get device(): Device {
    return this.session.device;
  }

  /** One picture (features or prefix) with the prompt: spec §3.2-3.3. */
  async run(input: PrefusionPicture & PrefusionText, options: FuseOptions = {}): Promise<PrefusionResult> {
    return this.fuseFrames([input], input, options);
  }

  /** A picture's prefix alone (no prompt rows), e.g. to warm a cache. */
  async prefix(image: PrefusionImage): Promise<PicturePrefix> {
    this.checkImage(image);
    return (await this.pass(image, new Float32Array(0), 0, { prefix: true, state: false })).prefix as PicturePrefix;
  }

  /**
   * Several pictures with one prompt (a video's frames, spec §6.2, or several images): one pass per
   * picture; vision tokens are concatenated in order, fused text is the float32 mean over pictures,
   * kept as a running sum so no picture's activations outlive its pass. Pictures given as prefixes
   * run only the prompt's rows.
   */
  async fuseFrames(pictures: AsyncIterable<PrefusionPicture> | Iterable<PrefusionPicture>, text: PrefusionText, options: FuseOptions = {}): Promise<FusedFrames> {
    let start = now();
    const H = this.config.llama.hiddenSize;
    const L = this.checkText(text);
    // Padded rows (ids <= 0) are neither fused nor attended: only the kept rows go through the graph.
    const kept = keptRows(text.ids);
    const keptEmbeds = new Float32Array(kept.length * H);
    kept.forEach((t, i) => keptEmbeds.set(text.textEmbeds.subarray(t * H, (t + 1) * H), i * H));
    const sum = new Float32Array(kept.length * H);
    const vision: Float32Array[] = [];
    let ms = now() - start;
    for await (const picture of pictures) {
      start = now(); // the wait for this picture was its source's time
      const out = await this.fuseOne(picture, keptEmbeds, vision.length, options);
      vision.push(out.visionTokens);
      for (let i = 0; i < sum.length; i++) sum[i] += out.fusedText[i];
      ms += now() - start;
    }
    start = now();
    if (vision.length === 0) throw new InvalidOptionError('fuseFrames got no frames');
    const visionTokens = new Float32Array(vision.reduce((n, v) => n + v.length, 0));
    vision.reduce((offset, v) => (visionTokens.set(v, offset), offset + v.length), 0);
    // Scatter the mean back; padded rows keep their raw embedding (spec §3.3).
    const fusedText = Float32Array.from(text.textEmbeds.subarray(0, L * H));
    kept.forEach((t, i) => {
      for (let j = 0; j < H; j++) fusedText[t * H + j] = sum[i * H + j] / vision.length;
    });
    return { visionTokens, fusedText, frames: vision.length, ms: ms + now() - start };
  }

  dispose(): Promise<void> {
    return this.session.dispose();
  }

  /** One picture's pass over the kept prompt rows: its vision tokens and the prompt's fused rows. */
  private async fuseOne(picture: PrefusionPicture, keptEmbeds: Float32Array, index: number, options: FuseOptions): Promise<PrefusionResult> {
    const textRows = keptEmbeds.length / this.config.llama.hiddenSize;
    const state = options.onState !== undefined && this.continues;
    if (isPrefix(picture)) {
      this.checkPositions(picture.rows + textRows);
      if (!textRows) {
        if (state) options.onState?.(picture, index);
        return { visionTokens: picture.visionTokens, fusedText: keptEmbeds };
      }
      const out = await this.pass(picture, keptEmbeds, picture.rows, { prefix: false, state });
      if (out.state) options.onState?.(out.state, index);
      return { visionTokens: picture.visionTokens, fusedText: out.fusedText };
    }
    const { M, CC } = this.checkImage(picture);
    this.checkPositions(M + CC + textRows);
    const out = await this.pass(picture, keptEmbeds, 0, { prefix: options.onPrefix !== undefined, state });
    if (out.prefix) options.onPrefix?.(out.prefix, picture, index);
    if (out.state) options.onState?.(out.state, index);
    return { visionTokens: out.visionTokens as Float32Array, fusedText: out.fusedText };
  }

  /**
   * One run of the graph: a picture's rows (features) or its prefix (past), then the kept prompt
   * rows; `want` says which keys/values to bring back: the picture's prefix, the state after the prompt.
   */
  private async pass(picture: PrefusionPicture, keptEmbeds: Float32Array, pastRows: number, want: { prefix: boolean; state: boolean }) {
    const { hiddenSize: H, numKvHeads, headDim } = this.config.llama;
    const D = this.config.visionHidden;
    const layers = this.config.layers;
    const first = !isPrefix(picture);
    const rows = (data: Float32Array, width: number) => tensor('float32', [1, data.length / width, width], data);
    const none = new Float32Array(0);
    const feeds: Record<string, Tensor> = {
      [PREFUSION_IO.imageFeatures]: rows(first ? picture.imageFeatures : none, D),
      [PREFUSION_IO.compressed]: rows(first ? picture.compressed : none, D),
      [PREFUSION_IO.textEmbeds]: rows(keptEmbeds, H),
    };
    const emptyPast = tensor(this.dtype, [1, numKvHeads, 0, headDim]);
    for (let l = 0; l < layers; l++) {
      feeds[PREFUSION_IO.pastKey(l)] = first ? emptyPast : picture.keys[l];
      feeds[PREFUSION_IO.pastValue(l)] = first ? emptyPast : picture.values[l];
    }
    if (!first && picture.keys[0] && picture.keys[0].dims[2] !== pastRows) throw new InvalidOptionError(`prefix has ${picture.keys[0].dims[2]} rows, expected ${pastRows}`);
    const wantPrefix = first && want.prefix;
    const fetches: string[] = [PREFUSION_IO.fusedText];
    if (first) fetches.push(PREFUSION_IO.visionTokens);
    if (wantPrefix) for (let l = 0; l < layers; l++) fetches.push(PREFUSION_IO.prefixKey(l), PREFUSION_IO.prefixValue(l));
    if (want.state) for (let l = 0; l < layers; l++) fetches.push(PREFUSION_IO.stateKey(l), PREFUSION_IO.stateValue(l));
    const out = await this.session.run(feeds, fetches);
    const fusedText = out[PREFUSION_IO.fusedText].data as Float32Array;
    const visionTokens = first ? (out[PREFUSION_IO.visionTokens].data as Float32Array) : picture.visionTokens;
    const pictureRows = first ? (picture.imageFeatures.length + picture.compressed.length) / D : 0;
    const held = (key: (l: number) => string, value: (l: number) => string, rows: number): PicturePrefix => {
      const keys = Array.from({ length: layers }, (_, l) => out[key(l)]);
      const values = Array.from({ length: layers }, (_, l) => out[value(l)]);
      const bytes = visionTokens.byteLength + [...keys, ...values].reduce((n, t) => n + t.data.byteLength, 0);
      return { visionTokens, keys, values, rows, bytes };
    };
    return {
      fusedText,
      visionTokens,
      prefix: wantPrefix ? held(PREFUSION_IO.prefixKey, PREFUSION_IO.prefixValue, pictureRows) : undefined,
      state: want.state ? held(PREFUSION_IO.stateKey, PREFUSION_IO.stateValue, pastRows + pictureRows + keptEmbeds.length / H) : undefined,
    };
  }

  /** Validate sizes before they reach the runtime, so a mistake names the input at fault. */
  private checkImage(image: PrefusionImage): { M: number; CC: number } {
    const D = this.config.visionHidden;
    return { M: rowsOf('imageFeatures', image.imageFeatures, D), CC: rowsOf('compressed', image.compressed, D) };
  }

  private checkText(text: PrefusionText): number {
    const L = rowsOf('textEmbeds', text.textEmbeds, this.config.llama.hiddenSize);
    if (L !== text.ids.length) throw new InvalidOptionError(`textEmbeds has ${L} rows but the prompt has ${text.ids.length} ids`);
    return L;
  }

  private checkPositions(rows: number): void {
    if (rows > this.maxPositions) throw new InvalidOptionError(`${rows} pre-fusion rows exceed the graph's ${this.maxPositions} RoPE positions (build it with a larger maxPositions)`);
  }
}

function rowsOf(name: string, data: Float32Array, width: number): number {
  if (!(data instanceof Float32Array) || data.length === 0 || data.length % width !== 0) {
    throw new InvalidOptionError(`${name} must be a non-empty Float32Array of rows of width ${width}, got ${data?.length} values`);
  }
  return data.length / width;
}
