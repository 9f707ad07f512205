import { type Backend, type Device, type DeviceRequest, DeviceUnavailableError, InvalidOptionError, type WeightFormat } from '@llava-mini/core';

/** Weight types a user asks for. q8/q4 quantize Linear weights (MatMulNBits); norms and biases stay float. */
export type DtypeName = 'fp32' | 'fp16' | 'q8' | 'q4';
export const DTYPE_NAMES: readonly DtypeName[] = ['fp32', 'fp16', 'q8', 'q4'];

/** The runtime a converted model is for: picks the I/O dtype and graph variants it needs. */
export type Target = 'cpu' | 'cuda' | 'webgpu';
export const TARGETS: readonly Target[] = ['cpu', 'cuda', 'webgpu'];

export const STAGES = ['encoder', 'compressor', 'prefusion', 'llm'] as const;
export type StageName = (typeof STAGES)[number];

/** The graphs the model is made of: the four stages and the LLM's token embeddings. */
export type GraphName = StageName | 'embeddings';
export const GRAPHS: readonly GraphName[] = ['encoder', 'compressor', 'prefusion', 'llm', 'embeddings'];

/** The stage a graph belongs to: the embeddings table is the LLM's, in the LLM's dtype. */
export const stageOf = (graph: GraphName): StageName => (graph === 'embeddings' ? 'llm' : graph);

export function checkDtype(value: unknown, what = 'dtype'): DtypeName {
  if (!DTYPE_NAMES.includes(value as DtypeName)) throw new InvalidOptionError(`${what} must be one of ${DTYPE_NAMES.join(', ')}, got ${JSON.stringify(value)}`);
  return value as DtypeName;
}

export function checkTarget(value: unknown): Target {
  if (!TARGETS.includes(value as Target)) throw new InvalidOptionError(`target must be one of ${TARGETS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as Target;
}

/**
 * The dtype each stage gets for a requested dtype. The vision encoder is not quantized unless asked
 * by name (the reference runs CLIP in fp32, and its cost is small next to the LLM's).
 */
export function stageDtypes(dtype: DtypeName, overrides: Partial<Record<StageName, DtypeName>> = {}): Record<StageName, DtypeName> {
  const encoderDefault: DtypeName = dtype === 'q8' || dtype === 'q4' ? 'fp32' : dtype;
  const out: Record<StageName, DtypeName> = { encoder: encoderDefault, compressor: dtype, prefusion: dtype, llm: dtype };
  for (const [stage, d] of Object.entries(overrides)) {
    if (!STAGES.includes(stage as StageName)) throw new InvalidOptionError(`unknown stage '${stage}' (stages: ${STAGES.join(', ')})`);
    if (d !== undefined) out[stage as StageName] = checkDtype(d, `dtype of stage ${stage}`);
  }
  return out;
}

/**
 * The graph format for a stage. GPU targets need float16 activations: onnxruntime's CUDA attention
 * kernels have no float32 variant, and WebGPU is fastest (and smallest) in float16. On CPU,
 * quantized weights run with float32 activations.
 */
export function weightFormat(dtype: DtypeName, target: Target, blockSize = 32): WeightFormat {
  const activations = dtype === 'fp16' || target !== 'cpu' ? 'float16' : 'float32';
  // accuracy_level 4 (int8 activations) selects onnxruntime's fast CPU kernels; without it 8-bit
  // weights run about 14x slower (packages/llm/README.md, bench/README.md). Symmetric blocks (no
  // zero points, like llama.cpp's Q8_0 / Q4_0) take its cheaper CPU path (bench/RESULTS.md, table 6).
  const cpu = target === 'cpu';
  const accuracyLevel = cpu ? 4 : undefined;
  const symmetric = cpu || undefined;
  if (dtype === 'q8') return { dtype: activations, quant: { bits: 8, blockSize, accuracyLevel, symmetric } };
  if (dtype === 'q4') return { dtype: activations, quant: { bits: 4, blockSize, accuracyLevel, symmetric } };
  return { dtype: activations };
}

/**
 * The devices a model converted for each target runs on. GPU targets have float16 I/O for the GPU
 * kernels they were made for (the CPU would run them slowly or not at all); float32 graphs (target
 * cpu) run on any device but CUDA, whose attention kernels have no float32 variant.
 */
export const TARGET_DEVICES: Readonly<Record<Target, readonly Device[]>> = { cpu: ['cpu', 'wasm', 'webgpu'], cuda: ['cuda'], webgpu: ['webgpu'] };

const targetOf = (device: Device): Target => (device === 'cuda' || device === 'webgpu' ? device : 'cpu');

/**
 * The device a model converted for `target` runs on: `request`, refused with how to convert when the
 * model was not made for it; 'auto' picks the target's own device (a cpu model on a CUDA machine
 * runs on the CPU, with nothing probed or logged about CUDA).
 */
export async function resolveModelDevice(backend: Backend, target: Target, request: DeviceRequest, where: string, logger?: (m: string) => void): Promise<Device> {
  const allowed = TARGET_DEVICES[target];
  if (request !== 'auto' && !allowed.includes(request)) {
    throw new InvalidOptionError(
      `${where} was converted for target ${target} (devices ${allowed.join(', ')}), not for device '${request}': convert the checkpoint again with \`llava-mini convert CHECKPOINT --out DIR --target ${targetOf(request)}\``,
    );
  }
  const wanted: DeviceRequest = request !== 'auto' ? request : target !== 'cpu' ? target : backend.devices.includes('cpu') ? 'cpu' : 'auto';
  try {
    return await backend.resolveDevice(wanted, logger);
  } catch (err) {
    if (request !== 'auto' || !(err instanceof DeviceUnavailableError) || target === 'cpu') throw err;
    throw new DeviceUnavailableError(err.device, err.reason, `${err.hint} ${where} was converted for target ${target}; for the CPU, convert the checkpoint again with --target cpu.`, { cause: err });
  }
}
