/**
 * Table 5, a peer on the same work: transformers.js (`@huggingface/transformers`, a root dev
 * dependency) runs the LLM stage's decoder (same size, same weights) next to ours, both on
 * onnxruntime-node CPU, fp32, greedy, the same prompt ids.
 *
 * The checkpoint is exported in the layout transformers.js loads for a LlamaForCausalLM: a folder
 * with config.json, the tokenizer files and onnx/model.onnx (weights in model.onnx.data beside it,
 * which onnxruntime-node resolves from the model path). Its graph, built with core's Graph and the
 * same llamaLayer as ours, has the I/O transformers.js feeds a decoder (decoder_forward):
 *   input_ids int64 [batch, seq], attention_mask int64 [batch, total],
 *   past_key_values.{i}.key/value float32 [batch, kv_heads, past, head_dim] (empty on the first call)
 *   -> logits float32 [batch, 1, vocab] (last row only, as ours), present.{i}.key/value [batch, kv_heads, total, head_dim].
 * No position_ids input: GroupQueryAttention derives positions from the mask (batch 1, no padding).
 * The KV cache grows by concatenation (a new present per step), where ours is preallocated and written in place.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FP32, Graph, linear, param, readWeight, tensor, type Value, type WeightSource } from '@llava-mini/core';
import { Checkpoint, ExternalDataWriter, nodeBackend, saveModel } from '@llava-mini/core/node';
import { argmax, generate, type LlamaConfig, LlamaModel, llamaLayer, llamaModelPaths, loadTokenizer, readLlamaConfig, ropeCaches, writeLlamaModel } from '@llava-mini/llm/node';
import { CACHE, fmt, log, median, now, promptIds, table } from './lib/common.js';
import { midCheckpoint } from './lib/llm-model.js';

const DIR = path.join(CACHE, process.env.BENCH_PEER_CHECKPOINT ? 'peer-custom' : 'peer');
// Room for the ~4k-context point (a LONG-token prompt and its decode steps).
const MAX_POSITIONS = 4096 + 64;

/** The LLM stage bench's model (same weights as table 3), or any LLaMA checkpoint folder named by BENCH_PEER_CHECKPOINT. */
async function checkpoint(): Promise<string> {
  if (process.env.BENCH_PEER_CHECKPOINT) return path.resolve(process.env.BENCH_PEER_CHECKPOINT);
  return (await midCheckpoint()).dir;
}

/** The decoder with transformers.js's I/O names (see the file comment). */
function transformersJsGraph(src: WeightSource, c: LlamaConfig, weights: ExternalDataWriter): Graph {
  const H = c.hiddenSize;
  const g = new Graph({ name: 'llama-transformers-js', weights });
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  // GroupQueryAttention's lengths from the mask: seqlens_k = sum(mask) - 1 per row, total = mask width.
  const seqlensK = g.cast(g.sub(g.op('ReduceSum', [mask, g.int64s([1])], { keepdims: 0 }), g.int64s([1])), 'int32');
  const totalSequenceLength = g.cast(g.squeeze(g.slice(g.shape(mask), [1], [2], [0]), [0]), 'int32');
  const rope = ropeCaches(c, MAX_POSITIONS);
  const cosCache = g.weight('rope.cos_cache', tensor('float32', [MAX_POSITIONS, c.headDim / 2], rope.cos));
  const sinCache = g.weight('rope.sin_cache', tensor('float32', [MAX_POSITIONS, c.headDim / 2], rope.sin));
  const embed = readWeight(src, 'model.embed_tokens.weight', [c.vocabSize, H]);
  let x = g.gather(param(g, 'model.embed_tokens.weight', embed), ids, 0); // [B, S, H]
  const kvShape = ['batch_size', c.numKvHeads, 'past_sequence_length', c.headDim];
  const presentShape = ['batch_size', c.numKvHeads, 'total_sequence_length', c.headDim];
  for (let l = 0; l < c.numLayers; l++) {
    const pastKey = g.input(`past_key_values.${l}.key`, 'float32', kvShape);
    const pastValue = g.input(`past_key_values.${l}.value`, 'float32', kvShape);
    const attention = (q: Value, k: Value, v: Value): Value => {
      const [out, presentKey, presentValue] = g.groupQueryAttention(
        { query: q, key: k, value: v, pastKey, pastValue, seqlensK, totalSequenceLength, cosCache, sinCache },
        { numHeads: c.numHeads, kvNumHeads: c.numKvHeads },
      );
      g.output(presentKey, `present.${l}.key`, 'float32', presentShape);
      g.output(presentValue, `present.${l}.value`, 'float32', presentShape);
      return out;
    };
    x = llamaLayer(g, src, `model.layers.${l}`, c, x, attention, FP32);
  }
  const last = g.slice(x, [-1], [2 ** 62], [1]); // [B, 1, H]
  const normed = g.simplifiedLayerNorm(last, param(g, 'model.norm.weight', readWeight(src, 'model.norm.weight', [H])), c.rmsNormEps);
  const head = c.tieWordEmbeddings ? embed : readWeight(src, 'lm_head.weight', [c.vocabSize, H]);
  g.output(linear(g, normed, 'lm_head', head, undefined), 'logits', 'float32', ['batch_size', 1, c.vocabSize]);
  return g;
}

/** Write both model folders once: ours (writeLlamaModel) and the transformers.js export. */
async function prepare(ck: string, c: LlamaConfig): Promise<{ ours: { model: string; embeddings: string }; theirs: string }> {
  const stamp = path.join(DIR, 'source.txt');
  const ours = path.join(DIR, 'ours');
  const theirs = path.join(DIR, 'transformers-js', 'llama');
  const source = `${ck}\npositions ${MAX_POSITIONS}\ngraphs v3p2`; // v3p2: ours with the prompt kernel and its input
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === source) return { ours: llamaModelPaths(ours), theirs };
  fs.rmSync(DIR + '/ours', { recursive: true, force: true });
  fs.rmSync(path.dirname(theirs), { recursive: true, force: true });
  log('peer: building our graphs and the transformers.js export (once)...');
  const src = Checkpoint.open(ck);
  try {
    const paths = writeLlamaModel(ours, src, c, { format: { dtype: 'float32' }, maxPositions: MAX_POSITIONS });
    fs.mkdirSync(path.join(theirs, 'onnx'), { recursive: true });
    const modelPath = path.join(theirs, 'onnx', 'model.onnx');
    const weights = new ExternalDataWriter(modelPath);
    saveModel(transformersJsGraph(src, c, weights), modelPath, weights);
    const json = JSON.parse(fs.readFileSync(path.join(ck, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(theirs, 'config.json'), JSON.stringify({ ...json, architectures: ['LlamaForCausalLM'], model_type: 'llama' }, null, 2));
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json']) {
      if (fs.existsSync(path.join(ck, f))) fs.copyFileSync(path.join(ck, f), path.join(theirs, f));
    }
    fs.writeFileSync(stamp, source);
    return { ours: paths, theirs };
  } finally {
    src.close();
  }
}

interface Rates {
  prefill: number;
  decode: number;
  ids: number[];
}

export async function peer(quick: boolean): Promise<{ markdown: string; plots: string[] }> {
  let transformers: typeof import('@huggingface/transformers');
  try {
    transformers = await import('@huggingface/transformers');
  } catch (err) {
    return { markdown: `transformers.js could not be loaded (\`npm install\` at the root installs it as a dev dependency): ${String(err)}`, plots: [] };
  }
  const ck = await checkpoint();
  const c = readLlamaConfig(JSON.parse(fs.readFileSync(path.join(ck, 'config.json'), 'utf8')));
  const { ours, theirs } = await prepare(ck, c);
  const tokenizer = loadTokenizer(ck);
  const P = quick ? 64 : 128;
  const N = quick ? 16 : 32;
  const reps = quick ? 3 : 5;
  const LONG = quick ? 1024 : 4096;
  const longReps = quick ? 1 : 2;
  const ids = promptIds(tokenizer, P);
  const longIds = promptIds(tokenizer, LONG);

  log('peer: loading ours and transformers.js (both onnxruntime-node CPU)...');
  const model = await LlamaModel.create(await nodeBackend(), ours, { config: c, device: 'cpu', maxSequence: MAX_POSITIONS });
  const { env, AutoModelForCausalLM, Tensor } = transformers;
  env.allowRemoteModels = false;
  env.localModelPath = path.dirname(theirs);
  const tjs = await AutoModelForCausalLM.from_pretrained(path.basename(theirs), { dtype: 'fp32', device: 'cpu' });
  // Both are timed the same way, from outside: prefill = a one-token generate, decode = the extra
  // time of N more tokens; runs alternate so machine noise hits both alike.
  const runOurs = async (n: number, tokens: number) => {
    const t = now();
    const r = await generate(model.sequence(), ids.slice(0, n), { maxNewTokens: tokens, stopIds: [] }).done();
    return { ms: now() - t, ids: r.ids };
  };
  const runTheirs = async (n: number, tokens: number) => {
    const input_ids = new Tensor('int64', BigInt64Array.from(ids.slice(0, n), BigInt), [1, n]);
    const attention_mask = new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]);
    const t = now();
    const out = (await tjs.generate({ input_ids, attention_mask, max_new_tokens: tokens, min_new_tokens: tokens, do_sample: false })) as { tolist(): bigint[][] };
    return { ms: now() - t, ids: out.tolist()[0].slice(n).map(Number) };
  };
  const measure = async (run: typeof runOurs): Promise<Rates> => {
    const first = await run(P, 1);
    const full = await run(P, N + 1);
    return { prefill: P / (first.ms / 1000), decode: N / ((full.ms - first.ms) / 1000), ids: full.ids };
  };
  // The same work one level down: our LlamaModel calls, and their onnxruntime session driven by hand
  // (transformers.js's internal `sessions.model`), so driver overhead and the graph+runtime part separate.
  const rawOurs = async (prompt = ids): Promise<Rates> => {
    const seq = model.sequence();
    let t = now();
    let id = argmax(await seq.prefill(await model.embed(prompt)));
    const prefillMs = now() - t;
    t = now();
    for (let i = 0; i < N; i++) id = argmax(await seq.step(id));
    seq.dispose();
    return { prefill: prompt.length / (prefillMs / 1000), decode: N / ((now() - t) / 1000), ids: [] };
  };
  type OrtFeeds = Record<string, unknown>;
  const session = (tjs as unknown as { sessions: { model: { run(f: OrtFeeds): Promise<Record<string, unknown>> } } }).sessions.model;
  const ort = (t: InstanceType<typeof Tensor>) => (t as unknown as { ort_tensor: unknown }).ort_tensor;
  const rawTheirs = async (prompt = ids): Promise<Rates> => {
    const n = prompt.length;
    const feeds: OrtFeeds = { input_ids: ort(new Tensor('int64', BigInt64Array.from(prompt, BigInt), [1, n])), attention_mask: ort(new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n])) };
    for (let l = 0; l < c.numLayers; l++) for (const k of ['key', 'value']) feeds[`past_key_values.${l}.${k}`] = ort(new Tensor('float32', new Float32Array(0), [1, c.numKvHeads, 0, c.headDim]));
    let t = now();
    let out = await session.run(feeds);
    const prefillMs = now() - t;
    t = now();
    for (let i = 0; i < N; i++) {
      const total = n + i + 1;
      const next: OrtFeeds = { input_ids: ort(new Tensor('int64', BigInt64Array.of(1n), [1, 1])), attention_mask: ort(new Tensor('int64', new BigInt64Array(total).fill(1n), [1, total])) };
      for (let l = 0; l < c.numLayers; l++) for (const k of ['key', 'value']) next[`past_key_values.${l}.${k}`] = out[`present.${l}.${k}`];
      out = await session.run(next);
    }
    return { prefill: n / (prefillMs / 1000), decode: N / ((now() - t) / 1000), ids: [] };
  };
  const oursRuns: Rates[] = [];
  const theirsRuns: Rates[] = [];
  const oursRaw: Rates[] = [];
  const theirsRaw: Rates[] = [];
  const oursLong: Rates[] = [];
  const theirsLong: Rates[] = [];
  try {
    await runOurs(16, 4);
    await runTheirs(16, 4);
    log(`peer: ${reps} alternating runs...`);
    for (let r = 0; r < reps; r++) {
      oursRuns.push(await measure(runOurs));
      theirsRuns.push(await measure(runTheirs));
      oursRaw.push(await rawOurs());
      theirsRaw.push(await rawTheirs());
    }
    log(`peer: ${longReps} alternating run(s) at ~${LONG} context...`);
    for (let r = 0; r < longReps; r++) {
      oursLong.push(await rawOurs(longIds));
      theirsLong.push(await rawTheirs(longIds));
    }
  } finally {
    await model.dispose();
    await tjs.dispose();
  }
  const med = (rs: Rates[], k: 'prefill' | 'decode') => median(rs.map((r) => r[k]));
  const same = oursRuns[0].ids.slice(0, N).every((id, i) => id === theirsRuns[0].ids[i]);
  const params = c.numLayers * (c.hiddenSize * c.numHeads * c.headDim * 2 + c.hiddenSize * c.numKvHeads * c.headDim * 2 + 3 * c.hiddenSize * c.intermediateSize) + 2 * c.vocabSize * c.hiddenSize;
  const md = [
    `The LLM stage's decoder: ${(params / 1e6).toFixed(0)} M parameters (width ${c.hiddenSize}, ${c.numLayers} layers, GQA ${c.numHeads}/${c.numKvHeads}, MLP ${c.intermediateSize}, vocabulary ${c.vocabSize}), fp32, the same weights in both; prompt ${P} tokens, ${N} greedy tokens; medians of ${reps} alternating runs after a warm-up; at ~${LONG} context, a ${LONG}-token prompt then ${N} decode steps (median of ${longReps} alternating run(s), one level down). transformers.js ${(transformers as { env: { version?: string } }).env.version ?? ''} runs the exported folder with its own onnxruntime-node (1.30, the same as ours). Both timed alike from outside: prefill = time of a one-token generate(), decode = the extra time of ${N} more tokens. Ours writes the KV cache in place in a preallocated buffer; theirs concatenates a new cache every step.`,
    '',
    table(
      ['runtime', 'prefill tok/s', 'decode tok/s'],
      [
        ['ours (LlamaModel + generate())', fmt(med(oursRuns, 'prefill'), 1), fmt(med(oursRuns, 'decode'), 2)],
        ['transformers.js (AutoModelForCausalLM.generate)', fmt(med(theirsRuns, 'prefill'), 1), fmt(med(theirsRuns, 'decode'), 2)],
        ['ratio ours / theirs', `${fmt(med(oursRuns, 'prefill') / med(theirsRuns, 'prefill'), 2)}x`, `${fmt(med(oursRuns, 'decode') / med(theirsRuns, 'decode'), 2)}x`],
        ['ours, LlamaModel.embed + prefill, step() (no generate())', fmt(med(oursRaw, 'prefill'), 1), fmt(med(oursRaw, 'decode'), 2)],
        ['theirs, their onnxruntime session run by hand (no generate())', fmt(med(theirsRaw, 'prefill'), 1), fmt(med(theirsRaw, 'decode'), 2)],
        ['ratio ours / theirs, one level down', `${fmt(med(oursRaw, 'prefill') / med(theirsRaw, 'prefill'), 2)}x`, `${fmt(med(oursRaw, 'decode') / med(theirsRaw, 'decode'), 2)}x`],
        [`ours, one level down, ${LONG}-token prompt`, fmt(med(oursLong, 'prefill'), 1), fmt(med(oursLong, 'decode'), 2)],
        [`theirs, one level down, ${LONG}-token prompt`, fmt(med(theirsLong, 'prefill'), 1), fmt(med(theirsLong, 'decode'), 2)],
        [`ratio ours / theirs at ~${LONG} context (decode goal >= 1.5x)`, `${fmt(med(oursLong, 'prefill') / med(theirsLong, 'prefill'), 2)}x`, `${fmt(med(oursLong, 'decode') / med(theirsLong, 'decode'), 2)}x`],
      ],
      [false, true, true],
    ),
    '',
    `Same greedy tokens from both: ${same ? 'yes' : `no (ours ${oursRuns[0].ids.slice(0, 8).join(' ')}..., theirs ${theirsRuns[0].ids.slice(0, 8).join(' ')}...)`}.`,
  ];
  return { markdown: md.join('\n'), plots: [] };
}
