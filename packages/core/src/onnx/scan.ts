/*
 * Reading the few facts the runtimes need from a serialized model (which external-data files it
 * names, which operators its nodes run) by walking protobuf's wire format directly. The browser path
 * needs these too, and protobufjs with its schema is ~300 KB a page should not carry for that.
 * Field numbers are onnx.proto's (see proto.ts for the schema).
 */
import { ModelFilesError } from '../errors.js';

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const VALUE_NAME = 1;
const VALUE_TYPE = 2;
const TYPE_TENSOR = 1;
const TENSOR_TYPE_ELEM = 1;
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;
const NODE_DOMAIN = 7;
const TENSOR_EXTERNAL_DATA = 13;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

const utf8 = new TextDecoder();
const malformed = (what: string) => new ModelFilesError('ONNX model', `is not a valid serialized model: ${what}`);

/**
 * Fields of one message, in order: [field number, start, end] of each length-delimited field, or
 * [field number, value, -1] of each varint.
 */
function* fields(buf: Uint8Array, start = 0, end = buf.length): Generator<[number, number, number]> {
  let p = start;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (p >= end) throw malformed('truncated protobuf varint');
      const b = buf[p++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
  };
  while (p < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    switch (key & 7) {
      case 0:
        yield [field, varint(), -1];
        break;
      case 1:
        p += 8;
        break;
      case 5:
        p += 4;
        break;
      case 2: {
        const n = varint();
        if (p + n > end) throw malformed('truncated protobuf field');
        yield [field, p, p + n];
        p += n;
        break;
      }
      default:
        throw malformed(`unsupported protobuf wire type ${key & 7}`);
    }
  }
}

function sub(buf: Uint8Array, start: number, end: number, field: number): [number, number][] {
  const out: [number, number][] = [];
  for (const [f, s, e] of fields(buf, start, end)) if (f === field && e >= 0) out.push([s, e]);
  return out;
}

function graphRange(model: Uint8Array): [number, number] | undefined {
  return sub(model, 0, model.length, MODEL_GRAPH)[0];
}

/** The distinct external-data file names a serialized model refers to. */
export function externalDataLocations(model: Uint8Array): string[] {
  const graph = graphRange(model);
  if (!graph) return [];
  const locations = new Set<string>();
  for (const [ts, te] of sub(model, graph[0], graph[1], GRAPH_INITIALIZER)) {
    for (const [es, ee] of sub(model, ts, te, TENSOR_EXTERNAL_DATA)) {
      let key = '';
      let value = '';
      for (const [f, s, e] of fields(model, es, ee)) {
        if (f === ENTRY_KEY) key = utf8.decode(model.subarray(s, e));
        else if (f === ENTRY_VALUE) value = utf8.decode(model.subarray(s, e));
      }
      if (key === 'location' && value) locations.add(value);
    }
  }
  return [...locations];
}

export interface NodeInfo {
  name: string;
  opType: string;
  domain: string;
}

/** Name, operator and domain of every top-level node, in graph order (the nodes inside an If's branches are not listed). */
export function modelNodes(model: Uint8Array): NodeInfo[] {
  const graph = graphRange(model);
  if (!graph) return [];
  return sub(model, graph[0], graph[1], GRAPH_NODE).map(([ns, ne]) => {
    const node: NodeInfo = { name: '', opType: '', domain: '' };
    for (const [f, s, e] of fields(model, ns, ne)) {
      if (f === NODE_NAME) node.name = utf8.decode(model.subarray(s, e));
      else if (f === NODE_OP_TYPE) node.opType = utf8.decode(model.subarray(s, e));
      else if (f === NODE_DOMAIN) node.domain = utf8.decode(model.subarray(s, e));
    }
    return node;
  });
}

/** Name and ONNX element type (TensorProto.DataType; 0 when not a tensor) of each graph input. */
export function modelInputs(model: Uint8Array): { name: string; elemType: number }[] {
  const graph = graphRange(model);
  if (!graph) return [];
  return sub(model, graph[0], graph[1], GRAPH_INPUT).map(([vs, ve]) => {
    let name = '';
    let elemType = 0;
    for (const [f, s, e] of fields(model, vs, ve)) {
      if (f === VALUE_NAME && e >= 0) name = utf8.decode(model.subarray(s, e));
      else if (f === VALUE_TYPE && e >= 0) {
        for (const [ts, te] of sub(model, s, e, TYPE_TENSOR)) for (const [tf, v, x] of fields(model, ts, te)) if (tf === TENSOR_TYPE_ELEM && x < 0) elemType = v;
      }
    }
    return { name, elemType };
  });
}
