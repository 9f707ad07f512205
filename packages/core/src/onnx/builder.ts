import { GraphError } from '../errors.js';
import { type DType, type Tensor, tensorBytes } from '../tensor.js';
import {
  ATTRIBUTE_TYPE,
  type AttributeProtoJson,
  encodeModel,
  type GraphProtoJson,
  type NodeProtoJson,
  ONNX_DATA_TYPE,
  type TensorProtoJson,
  type ValueInfoProtoJson,
} from './proto.js';

/**
 * A tensor dimension: a fixed size, a symbolic name such as 'batch' or 'seq' (every dimension with
 * the same name is the same size, and onnxruntime's memory planner relies on it), or null: a size
 * known to nothing, not even equal to itself elsewhere in the graph.
 */
export type Dim = number | string | null;

/** Where a weight's bytes went when they were not kept inside the .onnx file. */
export interface ExternalRef {
  /** File name relative to the .onnx file's folder. */
  location: string;
  offset: number;
  length: number;
}

/**
 * Decides where initializer bytes live. Returning undefined keeps them inline; a node file sink
 * (`ExternalDataWriter` in `@llava-mini/core/node`) appends them to a data file as they arrive, so a
 * model larger than protobuf's 2 GB limit can be written without holding all its weights.
 */
export interface WeightSink {
  place(name: string, bytes: Uint8Array): ExternalRef | undefined;
}

/** A named value flowing through the graph. Only the builder that made it may use it. */
export class Value {
  constructor(
    readonly name: string,
    readonly owner: GraphCore,
  ) {}
}

/** Attribute values: integers become INT(S), other numbers FLOAT(S); `attr.*` forces a type. */
export type AttrValue = number | string | number[] | string[] | Tensor | TypedAttr | GraphAttr;
export interface TypedAttr {
  readonly kind: 'float' | 'floats' | 'int' | 'ints';
  readonly value: number | number[];
}
/** A subgraph attribute (an If's branch), made by `GraphCore.branch`. */
export interface GraphAttr {
  readonly kind: 'graph';
  readonly value: GraphProtoJson;
}
export const attr = {
  float: (value: number): TypedAttr => ({ kind: 'float', value }),
  floats: (value: number[]): TypedAttr => ({ kind: 'floats', value }),
  int: (value: number): TypedAttr => ({ kind: 'int', value }),
  ints: (value: number[]): TypedAttr => ({ kind: 'ints', value }),
};
export type Attrs = Record<string, AttrValue | undefined>;

export interface OpOptions {
  /** Operator domain: '' (ONNX) by default, 'com.microsoft' for onnxruntime contrib ops. */
  domain?: string;
  /** Name of the (first) output, e.g. the graph output it feeds; otherwise one is generated. */
  name?: string;
}

export interface GraphOptions {
  name?: string;
  /** ONNX opset of the default domain (21 by default; 23 for RMSNormalization and Attention). */
  opset?: number;
  weights?: WeightSink;
  producer?: string;
  metadata?: Record<string, string>;
}

/** What a branch graph shares with the graph it belongs to. */
interface Scope {
  parent: GraphCore;
  names: Set<string>;
  domains: Set<string>;
  scopes: string[];
}

const encoder = new TextEncoder();

/**
 * Graph state and serialization. Stage code uses `Graph` (ops.ts), which adds one method per
 * operator on top of the generic `op()` here.
 */
export class GraphCore {
  readonly opset: number;
  private readonly graphName: string;
  private readonly weights?: WeightSink;
  private readonly producer: string;
  private readonly metadata: Record<string, string>;
  private readonly nodes: NodeProtoJson[] = [];
  private readonly initializers: TensorProtoJson[] = [];
  private readonly inputs: ValueInfoProtoJson[] = [];
  private readonly outputs: ValueInfoProtoJson[] = [];
  // A branch shares these with its parent: onnxruntime refuses a subgraph value that shadows an
  // outer one, and the model's opset imports must cover the branches' domains.
  private readonly names: Set<string>;
  private readonly domains: Set<string>;
  private readonly scopes: string[];
  private readonly parent?: GraphCore;
  private counter = 0;

  constructor(options: GraphOptions = {}, scope?: Scope) {
    this.opset = scope?.parent.opset ?? options.opset ?? 21;
    this.graphName = options.name ?? 'main';
    this.weights = scope?.parent.weights ?? options.weights;
    this.producer = options.producer ?? 'llava-mini';
    this.metadata = options.metadata ?? {};
    this.parent = scope?.parent;
    this.names = scope?.names ?? new Set();
    this.domains = scope?.domains ?? new Set();
    this.scopes = scope?.scopes ?? [];
  }

  /**
   * A branch of this graph (an If's then or else): `make` builds an empty graph of the caller's
   * class that may read this graph's values, `body` fills it and returns its outputs, which are
   * named afresh and typed `dtypes`.
   */
  protected branch<G extends GraphCore>(name: string, make: (options: GraphOptions, scope: Scope) => G, body: (g: G) => Value[], dtypes: DType[]): GraphAttr {
    const g = make({ name }, { parent: this, names: this.names, domains: this.domains, scopes: [...this.scopes] });
    const outs = body(g);
    if (outs.length !== dtypes.length) throw new GraphError(`branch '${name}' returned ${outs.length} values, not ${dtypes.length}`);
    outs.forEach((v, i) => g.output(v, g.fresh(`${name}_out`), dtypes[i]));
    return { kind: 'graph', value: g.graphProto() };
  }

  /** Run `body` with names prefixed by `prefix/`, so a layer's nodes are easy to find in a viewer. */
  scope<T>(prefix: string, body: () => T): T {
    this.scopes.push(prefix);
    try {
      return body();
    } finally {
      this.scopes.pop();
    }
  }

  input(name: string, dtype: DType, shape: Dim[]): Value {
    this.inputs.push(valueInfo(name, dtype, shape));
    return this.claim(name);
  }

  output(value: Value, name: string, dtype: DType, shape?: Dim[]): void {
    this.own(value);
    if (value.name !== name) this.op('Identity', [value], {}, { name });
    this.outputs.push(valueInfo(name, dtype, shape));
  }

  /** A checkpoint weight: its bytes go to the weight sink (external data) when there is one. */
  weight(name: string, t: Tensor): Value {
    const ref = this.weights?.place(name, tensorBytes(t));
    if (!ref) {
      this.initializers.push(tensorProto(name, t));
      return this.claim(name);
    }
    // External: only the reference stays in the graph, so memory does not grow with the weights.
    this.initializers.push({
      name,
      dims: [...t.dims],
      data_type: ONNX_DATA_TYPE[t.dtype],
      data_location: 1,
      external_data: [
        { key: 'location', value: ref.location },
        { key: 'offset', value: String(ref.offset) },
        { key: 'length', value: String(ref.length) },
      ],
    });
    return this.claim(name);
  }

  /** A small constant kept inside the model (shapes, axes, scalars). */
  constant(t: Tensor, name?: string): Value {
    const n = name ?? this.fresh('const');
    this.initializers.push(tensorProto(n, t));
    return this.claim(n);
  }

  /** Add one node with a single output. Missing optional inputs are passed as undefined. */
  op(opType: string, inputs: (Value | undefined)[], attrs: Attrs = {}, options: OpOptions = {}): Value {
    return this.opN(opType, inputs, 1, attrs, options)[0];
  }

  /** Add one node with `outputs` outputs (later ones may be ignored by the caller). */
  opN(opType: string, inputs: (Value | undefined)[], outputs: number, attrs: Attrs = {}, options: OpOptions = {}): Value[] {
    const inputNames = inputs.map((v) => (v === undefined ? '' : this.own(v).name));
    while (inputNames.length && inputNames[inputNames.length - 1] === '') inputNames.pop();
    const base = options.name ?? this.fresh(opType);
    const outputNames = Array.from({ length: outputs }, (_, i) => (i === 0 ? base : `${base}:${i}`));
    const domain = options.domain ?? '';
    this.domains.add(domain);
    this.nodes.push({
      name: `node:${base}`,
      op_type: opType,
      domain,
      input: inputNames,
      output: outputNames,
      attribute: Object.entries(attrs)
        .filter((e): e is [string, AttrValue] => e[1] !== undefined)
        .map(([k, v]) => attributeProto(k, v)),
    });
    return outputNames.map((n) => this.claim(n));
  }

  /** Serialize to an ONNX ModelProto. Weights placed in a sink are referenced, not copied. */
  toBytes(): Uint8Array {
    const opsetImport = [...this.domains].map((domain) => ({ domain, version: domain === '' ? this.opset : 1 }));
    if (!this.domains.has('')) opsetImport.push({ domain: '', version: this.opset });
    return encodeModel({
      ir_version: this.opset >= 23 ? 11 : 10,
      opset_import: opsetImport,
      producer_name: this.producer,
      producer_version: '0.1.0',
      graph: this.graphProto(),
      metadata_props: Object.entries(this.metadata).map(([key, value]) => ({ key, value })),
    });
  }

  private graphProto(): GraphProtoJson {
    if (this.outputs.length === 0) throw new GraphError(`graph '${this.graphName}' has no outputs`);
    return { name: this.graphName, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs };
  }

  private fresh(hint: string): string {
    const prefix = this.scopes.length ? `${this.scopes.join('/')}/` : '';
    let name: string;
    do name = `${prefix}${hint}_${this.counter++}`;
    while (this.names.has(name));
    return name;
  }

  private claim(name: string): Value {
    if (!name) throw new GraphError('a value needs a non-empty name');
    if (this.names.has(name)) throw new GraphError(`value name '${name}' is already used in graph '${this.graphName}'`);
    this.names.add(name);
    return new Value(name, this);
  }

  /** Its own values and, in a branch, those of the graphs around it. */
  private own(v: Value): Value {
    let g: GraphCore | undefined = this;
    while (g && v instanceof Value && v.owner !== g) g = g.parent;
    if (!(v instanceof Value) || !g) {
      throw new GraphError(`value '${(v as Value)?.name}' does not belong to graph '${this.graphName}'`);
    }
    return v;
  }
}

function valueInfo(name: string, dtype: DType, shape?: Dim[]): ValueInfoProtoJson {
  const tensorType: ValueInfoProtoJson['type']['tensor_type'] = { elem_type: ONNX_DATA_TYPE[dtype] };
  if (shape) {
    tensorType.shape = { dim: shape.map((d) => (d === null ? {} : typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  }
  return { name, type: { tensor_type: tensorType } };
}

function tensorProto(name: string, t: Tensor): TensorProtoJson {
  // Copy: the caller may reuse its buffer, and protobufjs encodes lazily at toBytes().
  return { name, dims: [...t.dims], data_type: ONNX_DATA_TYPE[t.dtype], raw_data: tensorBytes(t).slice() };
}

function attributeProto(name: string, v: AttrValue): AttributeProtoJson {
  if (typeof v === 'string') return { name, type: ATTRIBUTE_TYPE.STRING, s: encoder.encode(v) };
  if (typeof v === 'number') {
    return Number.isInteger(v) ? { name, type: ATTRIBUTE_TYPE.INT, i: v } : { name, type: ATTRIBUTE_TYPE.FLOAT, f: v };
  }
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) {
      return { name, type: ATTRIBUTE_TYPE.STRINGS, strings: (v as string[]).map((s) => encoder.encode(s)) };
    }
    const nums = v as number[];
    return nums.every(Number.isInteger)
      ? { name, type: ATTRIBUTE_TYPE.INTS, ints: nums }
      : { name, type: ATTRIBUTE_TYPE.FLOATS, floats: nums };
  }
  if ('kind' in v) {
    switch (v.kind) {
      case 'graph':
        return { name, type: ATTRIBUTE_TYPE.GRAPH, g: v.value };
      case 'float':
        return { name, type: ATTRIBUTE_TYPE.FLOAT, f: v.value as number };
      case 'floats':
        return { name, type: ATTRIBUTE_TYPE.FLOATS, floats: v.value as number[] };
      case 'int':
        return { name, type: ATTRIBUTE_TYPE.INT, i: v.value as number };
      case 'ints':
        return { name, type: ATTRIBUTE_TYPE.INTS, ints: v.value as number[] };
    }
  }
  return { name, type: ATTRIBUTE_TYPE.TENSOR, t: tensorProto(name, v as Tensor) };
}
