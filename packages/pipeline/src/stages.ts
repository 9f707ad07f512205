import { type Graph, InvalidOptionError, type WeightFormat, type WeightSink, type WeightSource } from '@llava-mini/core';
import { buildCompressorGraph, type CompressorConfig, readCompressorConfig } from '@llava-mini/compressor';
import { buildEncoderGraph, readVisionConfig } from '@llava-mini/encoder';
import { buildEmbeddingsGraph, buildLlamaGraph, readLlamaConfig } from '@llava-mini/llm';
import { buildPrefusionGraph, DEFAULT_MAX_POSITIONS } from '@llava-mini/prefusion';
import { checkDtype, checkTarget, type DtypeName, type StageName, stageDtypes, type Target, weightFormat } from './formats.js';
import type { GraphName } from './parts.js';


export interface ConversionOptions {
  /** Weight type of every stage (default fp32); the encoder stays float unless named in `stageDtypes`. */
  dtype?: DtypeName;
  stageDtypes?: Partial<Record<StageName, DtypeName>>;
  /** Runtime the graphs are for (default cpu). */
  target?: Target;
  /** LLM context window: KV-cache positions and RoPE rows (default min(max_position_embeddings, 8192)). */
  contextLength?: number;
  /** MatMulNBits block size for q8/q4 (default 32). */
  blockSize?: number;
}

/** Everything decided before building: per-stage formats and sizes. */
export interface ConversionPlan {
  target: Target;
  dtypes: Record<StageName, DtypeName>;
  formats: Record<GraphName, WeightFormat>;
  contextLength: number;
  prefusionPositions: number;
  keyGrid: number;
  compressor: CompressorConfig;
}

export function planConversion(config: Record<string, unknown>, weights: WeightSource, options: ConversionOptions = {}): ConversionPlan {
  const target = checkTarget(options.target ?? 'cpu');
  const dtypes = stageDtypes(checkDtype(options.dtype ?? 'fp32'), options.stageDtypes);
  const blockSize = options.blockSize ?? 32;
  const vision = readVisionConfig(config);
  const compressor = readCompressorConfig(config, weights);
  const llama = readLlamaConfig(config);
  const contextLength = options.contextLength ?? Math.min(llama.maxPositionEmbeddings, 8192);
  if (!Number.isSafeInteger(contextLength) || contextLength < 1 || contextLength > llama.maxPositionEmbeddings) {
    throw new InvalidOptionError(`contextLength must be an integer in 1..${llama.maxPositionEmbeddings} (max_position_embeddings), got ${contextLength}`);
  }
  const format = (stage: StageName) => weightFormat(dtypes[stage], target, blockSize);
  const llmFormat = format('llm');
  return {
    target,
    dtypes,
    formats: { encoder: format('encoder'), compressor: format('compressor'), prefusion: format('prefusion'), llm: llmFormat, embeddings: llmFormat },
    contextLength,
    prefusionPositions: DEFAULT_MAX_POSITIONS,
    keyGrid: vision.gridSize * vision.resolutionRatio,
    compressor,
  };
}

/** The buffer size WebGPU adapters commonly cap at (maxBufferSize / maxStorageBufferBindingSize). */
const WEBGPU_BUFFER_BYTES = 2 ** 30;

/**
 * Build one graph of the model. Weights go to `weights` (an ExternalDataWriter when converting to
 * files) or stay inline (in-memory loading of small checkpoints).
 */
export function buildGraph(name: GraphName, config: Record<string, unknown>, src: WeightSource, plan: ConversionPlan, weights?: WeightSink): Graph {
  const format = plan.formats[name];
  switch (name) {
    case 'encoder':
      return buildEncoderGraph(src, readVisionConfig(config), { format, weights });
    case 'compressor':
      return buildCompressorGraph(src, plan.compressor, { format, keyGrid: plan.keyGrid, weights });
    case 'prefusion':
      return buildPrefusionGraph(src, config, { format, compressedTokens: plan.compressor.queries, maxPositions: plan.prefusionPositions, weights });
    case 'llm':
    case 'embeddings': {
      // WebGPU buffers are often capped at 1 GiB, below an 8B model's fp16 embedding table and
      // lm_head: the browser target stores both block-quantized when they would not fit, with 4 bits
      // (onnxruntime-web's WebGPU MatMulNBits takes 2 and 4 bits only), and float when they do.
      const llama = readLlamaConfig(config);
      const tableBytes = llama.vocabSize * llama.hiddenSize * (format.dtype === 'float32' ? 4 : 2);
      const browserQuant = plan.target === 'webgpu' && !format.quant && tableBytes > WEBGPU_BUFFER_BYTES ? { bits: 4 as const, blockSize: 32 } : undefined;
      const build = name === 'llm' ? buildLlamaGraph : buildEmbeddingsGraph;
      return build(src, llama, { format, maxPositions: plan.contextLength, headQuant: browserQuant, embeddingQuant: browserQuant, weights });
    }
  }
}
