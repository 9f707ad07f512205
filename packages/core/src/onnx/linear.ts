import { castFloat, toFloat32 } from '../dtype.js';
import { CheckpointMismatchError } from '../errors.js';
import { blocksPerRow, quantizeBlockwise } from '../quant.js';
import { type Tensor, tensor } from '../tensor.js';
import type { Value } from './builder.js';
import type { Graph } from './ops.js';

/**
 * How a stage stores its weights in the ONNX graph: activations and float weights in `dtype`; with
 * `quant`, Linear weights become MatMulNBits blocks (norms, biases and embeddings stay float).
 */
export interface WeightFormat {
  dtype: 'float32' | 'float16';
  /**
   * `accuracyLevel` is MatMulNBits' accuracy_level: 0 (default) computes in the activation dtype;
   * 4 quantizes activations to int8 per block, which onnxruntime's CPU kernels need to run 8-bit
   * weights fast (about 14x on x64 here). `symmetric` drops the zero points (quant.ts), which
   * onnxruntime's CPU kernels run faster.
   */
  quant?: { bits: 4 | 8; blockSize: number; accuracyLevel?: 0 | 1 | 2 | 3 | 4; symmetric?: boolean };
}

export const FP32: WeightFormat = { dtype: 'float32' };

/** A float weight in the graph's dtype. */
export function param(g: Graph, name: string, t: Tensor, format: WeightFormat = FP32): Value {
  return g.weight(name, castFloat(t, format.dtype));
}

/**
 * y = x W^T + b for a Hugging Face Linear weight W [out, in]. Float formats store W transposed
 * ([in, out], what MatMul wants); quantized formats store W as is (MatMulNBits' [N, K] rows).
 */
export function linear(g: Graph, x: Value, name: string, weight: Tensor, bias: Tensor | undefined, format: WeightFormat = FP32): Value {
  if (weight.dims.length !== 2) throw new CheckpointMismatchError(`${name}: a Linear weight must be 2-D, got [${weight.dims.join(', ')}]`);
  const [N, K] = weight.dims;
  if (bias && (bias.dims.length !== 1 || bias.dims[0] !== N)) {
    throw new CheckpointMismatchError(`${name}: bias of shape [${bias.dims.join(', ')}] does not match ${N} output features`);
  }
  let y: Value;
  if (format.quant) {
    const { bits, blockSize, symmetric } = format.quant;
    const q = quantizeBlockwise(toFloat32(weight), N, K, { bits, blockSize, symmetric });
    const nb = blocksPerRow(K, blockSize);
    y = g.matMulNBits(
      x,
      g.weight(`${name}.qweight`, tensor('uint8', [N, nb, (blockSize * bits) / 8], q.data)),
      param(g, `${name}.scales`, tensor('float32', [N * nb], q.scales), format),
      q.symmetric ? undefined : g.weight(`${name}.zero_points`, tensor('uint8', [q.zeroPoints.length], q.zeroPoints)),
      { K, N, bits, blockSize, accuracyLevel: format.quant.accuracyLevel },
    );
  } else {
    y = g.matMul(x, param(g, `${name}.T`, transpose2d(weight), format));
  }
  return bias ? g.add(y, param(g, `${name}.bias`, bias, format)) : y;
}

function transpose2d(w: Tensor): Tensor<'float32'> {
  const [rows, cols] = w.dims;
  const src = toFloat32(w);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return tensor('float32', [cols, rows], out);
}
