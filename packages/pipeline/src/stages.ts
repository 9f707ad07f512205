import type { Graph, WeightFormat, WeightSink, WeightSource } from '@llava-mini/core';
import { buildCompressorGraph } from '@llava-mini/compressor';
import { buildEncoderGraph } from '@llava-mini/encoder';
import { buildEmbeddingsGraph, buildLlamaGraph } from '@llava-mini/llm';
import { buildPrefusionGraph } from '@llava-mini/prefusion';
import { type GraphName, stageOf, weightFormat } from './formats.js';
import type { ModelPlan } from './plan.js';

export interface BuildOptions {
  /** MatMulNBits block size for q8/q4 (default 32). */
  blockSize?: number;
  /** Where the weights go (an ExternalDataWriter when converting to files); inline by default. */
  weights?: WeightSink;
}

/** The buffer size WebGPU adapters commonly cap at (maxBufferSize / maxStorageBufferBindingSize). */
const WEBGPU_BUFFER_BYTES = 2 ** 30;

/** The weight format of one graph: its stage's dtype on the plan's target. */
export function graphFormat(plan: ModelPlan, name: GraphName, blockSize = 32): WeightFormat {
  return weightFormat(plan.dtypes[stageOf(name)], plan.target, blockSize);
}

/**
 * Build one graph of the model. Weights go to `options.weights` (an ExternalDataWriter when
 * converting to files) or stay inline (in-memory loading of small checkpoints).
 */
export function buildGraph(name: GraphName, plan: ModelPlan, src: WeightSource, options: BuildOptions = {}): Graph {
  const { config } = plan;
  const { weights } = options;
  const format = graphFormat(plan, name, options.blockSize);
  switch (name) {
    case 'encoder':
      return buildEncoderGraph(src, config.vision, { format, weights });
    case 'compressor':
      return buildCompressorGraph(src, plan.compressor, { format, keyGrid: config.keyGrid, weights });
    case 'prefusion':
      return buildPrefusionGraph(src, config.prefusion, { format, compressedTokens: plan.compressor.queries, maxPositions: plan.prefusionPositions, weights });
    case 'llm':
    case 'embeddings': {
      // WebGPU buffers are often capped at 1 GiB, below an 8B model's fp16 embedding table and
      // lm_head: the browser target stores both block-quantized when they would not fit, with 4 bits
      // (onnxruntime-web's WebGPU MatMulNBits takes 2 and 4 bits only), and float when they do.
      const llama = config.llama;
      const tableBytes = llama.vocabSize * llama.hiddenSize * (format.dtype === 'float32' ? 4 : 2);
      const browserQuant = plan.target === 'webgpu' && !format.quant && tableBytes > WEBGPU_BUFFER_BYTES ? { bits: 4 as const, blockSize: 32 } : undefined;
      const build = name === 'llm' ? buildLlamaGraph : buildEmbeddingsGraph;
      return build(src, llama, { format, maxPositions: plan.contextLength, headQuant: browserQuant, embeddingQuant: browserQuant, weights });
    }
  }
}
