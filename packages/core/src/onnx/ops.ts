import { type DType, tensor } from '../tensor.js';
import { attr, GraphCore, type OpOptions, type Value } from './builder.js';
import { ONNX_DATA_TYPE } from './proto.js';

const MS = { domain: 'com.microsoft' } as const;

/**
 * The graph builder stages use: one method per operator, named after the ONNX op, taking values and
 * plain numbers, so a stage's forward pass reads like its math. Shape arguments given as numbers
 * become int64 constants. Contrib ops from onnxruntime's `com.microsoft` domain are at the bottom.
 */
export class Graph extends GraphCore {
  // ---- constants -------------------------------------------------------------------------
  int64s(values: readonly number[], name?: string): Value {
    return this.constant(tensor('int64', [values.length], BigInt64Array.from(values, BigInt)), name);
  }
  int64(value: number): Value {
    return this.constant(tensor('int64', [], BigInt64Array.of(BigInt(value))));
  }
  int32(value: number): Value {
    return this.constant(tensor('int32', [], Int32Array.of(value)));
  }
  float(value: number): Value {
    return this.constant(tensor('float32', [], Float32Array.of(value)));
  }
  floats(dims: readonly number[], values: Float32Array): Value {
    return this.constant(tensor('float32', dims, values));
  }

  // ---- control flow --------------------------------------------------------------------------
  /**
   * ONNX If: the values of `then` when the boolean scalar `cond` holds, else those of `otherwise`.
   * Each branch is a graph of its own that may read this graph's values; only the chosen one runs,
   * and both read the same weights (one copy in memory).
   */
  ifElse(cond: Value, dtypes: DType[], then: (g: Graph) => Value[], otherwise: (g: Graph) => Value[], o?: OpOptions): Value[] {
    const make = (options: ConstructorParameters<typeof Graph>[0], scope: ConstructorParameters<typeof Graph>[1]) => new Graph(options, scope);
    const thenBranch = this.branch('then', make, then, dtypes);
    const elseBranch = this.branch('else', make, otherwise, dtypes);
    return this.opN('If', [cond], dtypes.length, { then_branch: thenBranch, else_branch: elseBranch }, o);
  }

  // ---- elementwise ---------------------------------------------------------------------------
  add(a: Value, b: Value, o?: OpOptions): Value { return this.op('Add', [a, b], {}, o); }
  sub(a: Value, b: Value, o?: OpOptions): Value { return this.op('Sub', [a, b], {}, o); }
  mul(a: Value, b: Value, o?: OpOptions): Value { return this.op('Mul', [a, b], {}, o); }
  div(a: Value, b: Value, o?: OpOptions): Value { return this.op('Div', [a, b], {}, o); }
  pow(a: Value, b: Value, o?: OpOptions): Value { return this.op('Pow', [a, b], {}, o); }
  sqrt(x: Value, o?: OpOptions): Value { return this.op('Sqrt', [x], {}, o); }
  reciprocal(x: Value, o?: OpOptions): Value { return this.op('Reciprocal', [x], {}, o); }
  neg(x: Value, o?: OpOptions): Value { return this.op('Neg', [x], {}, o); }
  exp(x: Value, o?: OpOptions): Value { return this.op('Exp', [x], {}, o); }
  erf(x: Value, o?: OpOptions): Value { return this.op('Erf', [x], {}, o); }
  tanh(x: Value, o?: OpOptions): Value { return this.op('Tanh', [x], {}, o); }
  sigmoid(x: Value, o?: OpOptions): Value { return this.op('Sigmoid', [x], {}, o); }
  equal(a: Value, b: Value, o?: OpOptions): Value { return this.op('Equal', [a, b], {}, o); }
  greater(a: Value, b: Value, o?: OpOptions): Value { return this.op('Greater', [a, b], {}, o); }
  and(a: Value, b: Value, o?: OpOptions): Value { return this.op('And', [a, b], {}, o); }
  where(cond: Value, a: Value, b: Value, o?: OpOptions): Value { return this.op('Where', [cond, a, b], {}, o); }
  cast(x: Value, to: DType, o?: OpOptions): Value { return this.op('Cast', [x], { to: ONNX_DATA_TYPE[to] }, o); }
  identity(x: Value, o?: OpOptions): Value { return this.op('Identity', [x], {}, o); }
  /** GELU; `approximate` 'none' is the exact erf form (opset 20). */
  gelu(x: Value, approximate: 'none' | 'tanh' = 'none', o?: OpOptions): Value {
    return this.op('Gelu', [x], { approximate }, o);
  }

  // ---- linear algebra and normalization ------------------------------------------------------
  matMul(a: Value, b: Value, o?: OpOptions): Value { return this.op('MatMul', [a, b], {}, o); }
  softmax(x: Value, axis = -1, o?: OpOptions): Value { return this.op('Softmax', [x], { axis }, o); }
  reduceMean(x: Value, axes: number[], keepdims = true, o?: OpOptions): Value {
    return this.op('ReduceMean', [x, this.int64s(axes)], { keepdims: keepdims ? 1 : 0 }, o);
  }
  layerNorm(x: Value, scale: Value, bias: Value | undefined, epsilon: number, o?: OpOptions): Value {
    return this.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: attr.float(epsilon) }, o);
  }
  conv(x: Value, w: Value, b: Value | undefined, a: { kernel: number[]; strides: number[]; pads?: number[] }, o?: OpOptions): Value {
    return this.op('Conv', [x, w, b], { kernel_shape: a.kernel, strides: a.strides, pads: a.pads }, o);
  }

  // ---- shape ------------------------------------------------------------------------------
  reshape(x: Value, shape: readonly number[] | Value, o?: OpOptions): Value {
    return this.op('Reshape', [x, Array.isArray(shape) ? this.int64s(shape) : (shape as Value)], {}, o);
  }
  transpose(x: Value, perm: number[], o?: OpOptions): Value { return this.op('Transpose', [x], { perm }, o); }
  concat(xs: Value[], axis: number, o?: OpOptions): Value { return this.op('Concat', xs, { axis }, o); }
  slice(x: Value, starts: number[], ends: number[], axes: number[], o?: OpOptions): Value {
    return this.op('Slice', [x, this.int64s(starts), this.int64s(ends), this.int64s(axes)], {}, o);
  }
  gather(data: Value, indices: Value, axis = 0, o?: OpOptions): Value {
    return this.op('Gather', [data, indices], { axis }, o);
  }
  unsqueeze(x: Value, axes: number[], o?: OpOptions): Value { return this.op('Unsqueeze', [x, this.int64s(axes)], {}, o); }
  squeeze(x: Value, axes: number[], o?: OpOptions): Value { return this.op('Squeeze', [x, this.int64s(axes)], {}, o); }
  shape(x: Value, o?: OpOptions): Value { return this.op('Shape', [x], {}, o); }
  expand(x: Value, shape: Value, o?: OpOptions): Value { return this.op('Expand', [x, shape], {}, o); }

  // ---- onnxruntime contrib ops (com.microsoft) -------------------------------------------------
  /** RMSNorm: x / sqrt(mean(x^2) + eps) * scale, statistics in fp32 (registered in the ONNX domain). */
  simplifiedLayerNorm(x: Value, scale: Value, epsilon: number, o?: OpOptions): Value {
    return this.op('SimplifiedLayerNormalization', [x, scale], { axis: -1, epsilon: attr.float(epsilon), stash_type: 1 }, o);
  }
  /** Residual add fused with RMSNorm: returns [norm(x + skip), x + skip]. */
  skipSimplifiedLayerNorm(x: Value, skip: Value, scale: Value, epsilon: number, o?: OpOptions): [Value, Value] {
    const [y, , , sum] = this.opN('SkipSimplifiedLayerNormalization', [x, skip, scale], 4, { epsilon: attr.float(epsilon) }, { ...o, ...MS });
    return [y, sum];
  }
  quickGelu(x: Value, alpha = 1.702, o?: OpOptions): Value {
    return this.op('QuickGelu', [x], { alpha: attr.float(alpha) }, { ...o, ...MS });
  }
  /** Rotary embedding on [B, S, heads*headDim] with explicit position ids and cos/sin caches [maxPos, headDim/2]. */
  rotaryEmbedding(x: Value, positionIds: Value, cosCache: Value, sinCache: Value, a: { numHeads: number; interleaved?: boolean }, o?: OpOptions): Value {
    return this.op('RotaryEmbedding', [x, positionIds, cosCache, sinCache], { num_heads: a.numHeads, interleaved: a.interleaved ? 1 : 0 }, { ...o, ...MS });
  }
  /**
   * Multi-head attention on [B, S, heads*headDim] inputs. `attentionBias` is added to the scores
   * ([B or 1, heads or 1, S, T]) and carries causal and padding masks. Returns the attention output.
   */
  multiHeadAttention(
    q: Value,
    k: Value,
    v: Value,
    a: { numHeads: number; scale?: number; attentionBias?: Value; unidirectional?: boolean },
    o?: OpOptions,
  ): Value {
    return this.op(
      'MultiHeadAttention',
      [q, k, v, undefined, undefined, a.attentionBias],
      { num_heads: a.numHeads, scale: a.scale === undefined ? undefined : attr.float(a.scale), unidirectional: a.unidirectional ? 1 : undefined },
      { ...o, ...MS },
    );
  }
  /**
   * Grouped-query attention with a KV cache (BNSH [B, kvHeads, maxSeq, headDim]). When past and
   * present share a buffer the cache is updated in place. `seqlensK` [B] int32 = total length - 1;
   * `totalSequenceLength` scalar int32. With `cosCache`/`sinCache` RoPE is applied inside the op.
   * Returns [output, presentKey, presentValue].
   */
  groupQueryAttention(
    i: {
      query: Value;
      key: Value;
      value: Value;
      pastKey?: Value;
      pastValue?: Value;
      seqlensK: Value;
      totalSequenceLength: Value;
      cosCache?: Value;
      sinCache?: Value;
      positionIds?: Value;
    },
    a: { numHeads: number; kvNumHeads: number; scale?: number; rotaryInterleaved?: boolean },
    o?: OpOptions,
  ): [Value, Value, Value] {
    const rotary = i.cosCache !== undefined;
    const [out, presentKey, presentValue] = this.opN(
      'GroupQueryAttention',
      [i.query, i.key, i.value, i.pastKey, i.pastValue, i.seqlensK, i.totalSequenceLength, i.cosCache, i.sinCache, i.positionIds],
      3,
      {
        num_heads: a.numHeads,
        kv_num_heads: a.kvNumHeads,
        scale: a.scale === undefined ? undefined : attr.float(a.scale),
        do_rotary: rotary ? 1 : 0,
        rotary_interleaved: a.rotaryInterleaved ? 1 : 0,
      },
      { ...o, ...MS },
    );
    return [out, presentKey, presentValue];
  }
  /**
   * y = a @ dequant(B)^T with B block-quantized to `bits` (quant.ts makes B, scales, zero points).
   * K = input features, N = output features.
   */
  matMulNBits(a: Value, b: Value, scales: Value, zeroPoints: Value | undefined, q: { K: number; N: number; bits: 4 | 8; blockSize: number; accuracyLevel?: number }, o?: OpOptions): Value {
    return this.op('MatMulNBits', [a, b, scales, zeroPoints], { K: q.K, N: q.N, bits: q.bits, block_size: q.blockSize, accuracy_level: q.accuracyLevel }, { ...o, ...MS });
  }
}
