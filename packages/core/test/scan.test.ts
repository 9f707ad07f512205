import { describe, expect, it } from 'vitest';
import { decodeModel, externalDataLocations, Graph, modelInputs, modelNodes, tensor, type WeightSink } from '../src/index.js';

/** Weights above 16 bytes go to one of two files, alternating: a model naming two data files. */
function twoFiles(): WeightSink {
  let n = 0;
  const offsets: Record<string, number> = {};
  return {
    place(_name, bytes) {
      if (bytes.length <= 16) return undefined;
      const location = n++ % 2 ? 'b.data' : 'a.data';
      const offset = offsets[location] ?? 0;
      offsets[location] = offset + bytes.length;
      return { location, offset, length: bytes.length };
    },
  };
}

describe('scan: facts read from the wire format without protobufjs', () => {
  const g = new Graph({ name: 'scan', weights: twoFiles() });
  const x = g.input('x', 'float32', [1, 8, 16]);
  let h = x;
  for (let i = 0; i < 3; i++) h = g.add(g.matMul(h, g.weight(`w${i}`, tensor('float32', [16, 16], new Float32Array(256).fill(i)))), g.weight(`b${i}`, tensor('float32', [1], Float32Array.of(i))));
  const a = g.multiHeadAttention(h, h, h, { numHeads: 2 }, { name: 'attn' });
  g.output(a, 'y', 'float32', [1, 8, 16]);
  const bytes = g.toBytes();
  const full = decodeModel(bytes);

  it('external-data locations: the distinct files the initializers name, as protobufjs decodes them', () => {
    const expected = new Set(full.graph.initializer.flatMap((t) => t.external_data?.filter((e) => e.key === 'location').map((e) => e.value) ?? []));
    expect(new Set(externalDataLocations(bytes))).toEqual(expected);
    expect(externalDataLocations(bytes).sort()).toEqual(['a.data', 'b.data']);
  });

  it('nodes: names, operators and domains in graph order', () => {
    const nodes = modelNodes(bytes);
    expect(nodes).toEqual(full.graph.node.map((n) => ({ name: n.name, opType: n.op_type, domain: n.domain ?? '' })));
    expect(nodes.find((n) => n.opType === 'MultiHeadAttention')).toEqual({ name: 'node:attn', opType: 'MultiHeadAttention', domain: 'com.microsoft' });
  });

  it('inputs: names and element types, as protobufjs decodes them', () => {
    const f16 = new Graph({ name: 'f16' });
    f16.output(f16.cast(f16.input('p', 'float16', ['n', 3]), 'float32'), 'y', 'float32');
    expect(modelInputs(f16.toBytes())).toEqual([{ name: 'p', elemType: 10 }]);
    expect(modelInputs(bytes)).toEqual(full.graph.input.map((v) => ({ name: v.name, elemType: v.type.tensor_type.elem_type })));
  });

  it('a model with inline weights has no external files; a truncated one is refused', () => {
    const inline = new Graph({ name: 'inline' });
    inline.output(inline.add(inline.input('x', 'float32', [4]), inline.weight('w', tensor('float32', [4], new Float32Array(4)))), 'y', 'float32', [4]);
    expect(externalDataLocations(inline.toBytes())).toEqual([]);
    expect(() => modelNodes(bytes.subarray(0, bytes.length - 3))).toThrow(/truncated/);
  });
});
