/**
 * Table 1, the headline claim: LLaVA-Mini (C*C = 1, 4, 16, 64 vision tokens, with pre-fusion) against
 * a LLaVA-v1.5-style pipeline (all 576 projected CLIP tokens spliced into the LLM) on the same
 * backbone, CLIP and sessions, for two backbone sizes. Analytic FLOPs per stage next to measured ms
 * per stage (medians), time to first token, and the measured speedup against the FLOPs-predicted one.
 */
import * as path from 'node:path';
import { Graph, type InferenceSession, linear } from '@llava-mini/core';
import { Checkpoint, nodeBackend } from '@llava-mini/core/node';
import { LlavaMini, loadParts } from '@llava-mini/pipeline/node';
import { refLlamaConfig } from '@llava-mini/reference';
import type { TinyOptions } from '@llava-mini/tiny';
import { flops, fmt, log, median, ROOT, table } from './lib/common.js';
import { llamaBlocks, llavaMini, llavaV15, llmPrefill, type StageFlops, total } from './lib/flops.js';
import { ensureModel, promptIds, randomImage, type StageMs, timeMini, timeV15, visionShape } from './lib/models.js';
import { barChart, savePng } from './lib/plot.js';
import { CLIP_L_336, HEADLINE_LARGE, HEADLINE_SMALL, VICUNA_7B } from './lib/shapes.js';

export const COMPRESSOR_SIZES = [1, 2, 4, 8];
const CONTEXT = 1024;

/** Two backbones (their shapes in lib/shapes.ts): LLaMA-3 proportions, pre-fusion layers 1/8 of the LLM's as in the paper. */
export const BACKBONES: { name: string; options: TinyOptions }[] = [
  { name: 'small', options: HEADLINE_SMALL },
  { name: 'large', options: HEADLINE_LARGE },
];

export const modelName = (backbone: string, C: number) => `${backbone}-c${C}`;

/** model.mm_projector as its own graph (what LLaVA-v1.5 runs between CLIP and the LLM): Linear, GELU (erf), Linear. */
function projectorGraph(hfDir: string, D: number, H: number): Uint8Array {
  const src = Checkpoint.open(hfDir);
  try {
    const g = new Graph({ name: 'mm_projector' });
    const x = g.input('image_features', 'float32', [1, 'patches', D]); // [1, P, D]
    const h = g.gelu(linear(g, x, 'model.mm_projector.0', src.read('model.mm_projector.0.weight'), src.read('model.mm_projector.0.bias'))); // [1, P, H]
    const y = linear(g, h, 'model.mm_projector.2', src.read('model.mm_projector.2.weight'), src.read('model.mm_projector.2.bias')); // [1, P, H]
    g.output(y, 'image_tokens', 'float32', [1, 'patches', H]);
    return g.toBytes();
  } finally {
    src.close();
  }
}

const STAGES: (keyof StageFlops)[] = ['encoder', 'projector', 'compressor', 'prefusion', 'llm'];

interface Row {
  backbone: string;
  pipeline: string;
  tokens: number;
  flops: StageFlops;
  ms: StageMs;
}

const medianStages = (runs: StageMs[]): StageMs => {
  const keys = Object.keys(runs[0]) as (keyof StageMs)[];
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((r) => r[k]))])) as unknown as StageMs;
};

/** A second question about a picture already seen (picture cache warm) against the first, one backbone. */
interface CacheRow {
  backbone: string;
  firstMs: number;
  secondMs: number;
  firstFlops: number;
  secondFlops: number;
  prefixMB: number;
}

/**
 * Through the public API (`ask`, new conversations): the first question about a fresh picture, then
 * another question about the same pixels, whose pre-fusion prefix comes from the model's picture
 * cache (no CLIP, compressor or picture rows); TTFT as the answers report it, alternating runs.
 */
async function timeCache(parts: Awaited<ReturnType<typeof loadParts>>, runs: number): Promise<{ first: number; second: number; prefixMB: number; lengths: [number, number] }> {
  const model = new LlavaMini(parts);
  const first: number[] = [];
  const second: number[] = [];
  let lengths: [number, number] = [0, 0];
  for (let r = 0; r <= runs; r++) {
    const img = randomImage(9000 + r);
    const a = await model.ask(img, 'What is shown in this picture? Describe the scene in detail.', { maxNewTokens: 1 }).done();
    const b = await model.ask(img, 'Which colours are there in this picture? Name all of them.', { maxNewTokens: 1 }).done();
    if (b.timings.encoderMs !== 0) throw new Error('the second question re-ran CLIP: the picture cache missed');
    lengths = [a.promptTokenIds.length, b.promptTokenIds.length];
    if (r === 0) continue; // warm-up
    first.push(a.timings.timeToFirstTokenMs);
    second.push(b.timings.timeToFirstTokenMs);
  }
  const { bytes, entries } = model.vision.pictures.stats;
  return { first: median(first), second: median(second), prefixMB: bytes / entries / 1e6, lengths };
}

export interface HeadlineResult {
  markdown: string;
  plots: string[];
  /** Per backbone: speedup of 1 vision token over v1.5, measured and predicted. */
  summary: { backbone: string; measured: number; predicted: number }[];
}

export async function headline(quick: boolean, runs: number, only?: string[]): Promise<HeadlineResult> {
  const rows: Row[] = [];
  const cacheRows: CacheRow[] = [];
  const configs: string[] = [];
  const backend = await nodeBackend();
  let promptLength = 0;
  for (const b of BACKBONES.filter((x) => !only || only.includes(x.name))) {
    for (const C of COMPRESSOR_SIZES) {
      const { hf, converted } = await ensureModel(modelName(b.name, C), { ...b.options, compressorSize: C }, CONTEXT);
      const parts = await loadParts(converted, { device: 'cpu' });
      let projector: InferenceSession | undefined;
      try {
        const llm = refLlamaConfig(parts.config);
        const vision = visionShape(parts.config);
        const ids = promptIds(parts.tokenizer);
        promptLength = ids.length;
        if (C === 1) {
          configs.push(
            `- **${b.name}**: LLM width ${llm.hidden}, ${llm.layers} layers, ${llm.heads}/${llm.kvHeads} heads of ${llm.headDim}, MLP ${llm.intermediate}, vocabulary ${llm.vocab}; ` +
              `${b.options.prefusionLayers} pre-fusion layer(s); CLIP width ${vision.hidden}, ${vision.blocks} blocks run, MLP ${vision.intermediate}, 336 px / 14 = ${vision.patches} patches.`,
          );
          projector = await backend.createSession(projectorGraph(hf, vision.hidden, llm.hidden), { device: 'cpu' });
        }
        const Q = C * C;
        log(`headline: ${b.name}, ${Q} vision token(s)${projector ? ' and v1.5' : ''} (${runs} runs)...`);
        const mini: StageMs[] = [];
        const v15: StageMs[] = [];
        // One warm-up each (arenas grow, weights page in), then alternate so machine noise hits both alike.
        await timeMini(parts, ids, randomImage(1000 + C));
        if (projector) await timeV15(parts, projector, ids, randomImage(2000));
        for (let r = 0; r < runs; r++) {
          mini.push(await timeMini(parts, ids, randomImage(10 * r + C)));
          if (projector) v15.push(await timeV15(parts, projector, ids, randomImage(5000 + r)));
        }
        if (projector) rows.push({ backbone: b.name, pipeline: 'LLaVA-v1.5 style', tokens: 576, flops: llavaV15(llm, vision, ids.length), ms: medianStages(v15) });
        if (C === 1) {
          log(`headline: ${b.name}, a second question about the same picture (${runs} runs)...`);
          const c = await timeCache(parts, runs);
          const [L1, L2] = c.lengths;
          const firstFlops = total(llavaMini(llm, vision, b.options.prefusionLayers as number, 1, L1));
          // Pre-fusion over the L2 - 1 kept rows (the placeholder is padding) after the 577 cached ones; the LLM as before.
          const secondFlops = llamaBlocks(llm, L2 - 1, b.options.prefusionLayers as number, vision.patches + 1) + llmPrefill(llm, L2);
          cacheRows.push({ backbone: b.name, firstMs: c.first, secondMs: c.second, firstFlops, secondFlops, prefixMB: c.prefixMB });
        }
        rows.push({ backbone: b.name, pipeline: 'LLaVA-Mini', tokens: Q, flops: llavaMini(llm, vision, b.options.prefusionLayers as number, Q, ids.length), ms: medianStages(mini) });
      } finally {
        await projector?.dispose();
        await parts.dispose();
      }
    }
  }
  return report(rows, cacheRows, configs, promptLength, quick, runs);
}

async function report(rows: Row[], cacheRows: CacheRow[], configs: string[], L: number, quick: boolean, runs: number): Promise<HeadlineResult> {
  const md: string[] = [];
  md.push(`Backbones (seeded random weights, fp32, onnxruntime-node CPU), prompt L = ${L} tokens (Llama-3.1 template with the system prompt and one <image>):`);
  md.push('');
  md.push(...configs);
  md.push('');
  md.push(`Medians of ${runs} runs after one warm-up; LLaVA-Mini and v1.5 runs alternate on the same sessions. Time to first token (TTFT) = pixels to the first token's logits (preprocessing, every stage, LLM prefill). LLaVA-Mini runs the projector inside its pre-fusion graph, so its projector time is in the pre-fusion column.`);
  md.push('');
  md.push('#### FLOPs per stage (analytic) and measured ms per stage');
  md.push('');
  const trows = rows.map((r) => [
    r.backbone,
    r.pipeline,
    r.tokens,
    ...STAGES.map((s) => (r.flops[s] ? flops(r.flops[s]) : '-')),
    flops(total(r.flops)),
    fmt(r.ms.encoder),
    r.ms.projector ? fmt(r.ms.projector) : '-',
    r.ms.compressor ? fmt(r.ms.compressor) : '-',
    r.ms.prefusion ? fmt(r.ms.prefusion) : '-',
    fmt(r.ms.prefill),
    fmt(r.ms.ttft),
    r.ms.rows,
  ]);
  md.push(
    table(
      ['backbone', 'pipeline', 'vision tokens', 'encoder FLOPs', 'projector', 'compressor', 'pre-fusion', 'LLM prefill', 'total FLOPs', 'encoder ms', 'projector ms', 'compressor ms', 'pre-fusion ms', 'LLM prefill ms', 'TTFT ms', 'LLM rows'],
      trows,
      [false, false, ...Array(14).fill(true)],
    ),
  );
  md.push('');
  // Achieved rate per stage: where the time goes relative to the work, i.e. why a FLOPs ratio is not a time ratio.
  md.push('#### Achieved GFLOP/s per stage (analytic FLOPs / measured ms)');
  md.push('');
  const rate = (f: number, ms: number) => (f > 0 && ms > 0 ? fmt(f / ms / 1e6, 1) : '-');
  md.push(
    table(
      ['backbone', 'pipeline', 'vision tokens', 'encoder', 'projector', 'compressor', 'pre-fusion (with projector)', 'LLM prefill', 'whole TTFT'],
      rows.map((r) => [
        r.backbone,
        r.pipeline,
        r.tokens,
        rate(r.flops.encoder, r.ms.encoder),
        rate(r.flops.projector, r.ms.projector),
        rate(r.flops.compressor, r.ms.compressor),
        rate(r.flops.prefusion + (r.ms.projector ? 0 : r.flops.projector), r.ms.prefusion),
        rate(r.flops.llm, r.ms.prefill),
        rate(total(r.flops), r.ms.ttft),
      ]),
      [false, false, true, true, true, true, true, true, true],
    ),
  );
  md.push('');
  md.push('#### Speedup of LLaVA-Mini over the v1.5-style pipeline');
  md.push('');
  const summary: HeadlineResult['summary'] = [];
  const speedRows: (string | number)[][] = [];
  for (const b of BACKBONES) {
    const base = rows.find((r) => r.backbone === b.name && r.tokens === 576 && r.pipeline.startsWith('LLaVA-v1.5'));
    if (!base) continue;
    for (const r of rows.filter((x) => x.backbone === b.name && x.pipeline === 'LLaVA-Mini')) {
      const measured = base.ms.ttft / r.ms.ttft;
      const predicted = total(base.flops) / total(r.flops);
      if (r.tokens === 1) summary.push({ backbone: b.name, measured, predicted });
      speedRows.push([b.name, r.tokens, fmt(base.ms.ttft, 0), fmt(r.ms.ttft, 0), `${fmt(measured, 2)}x`, `${fmt(predicted, 2)}x`, `${fmt((100 * measured) / predicted, 0)} %`]);
    }
  }
  md.push(table(['backbone', 'vision tokens', 'v1.5 TTFT ms', 'Mini TTFT ms', 'measured speedup', 'FLOPs-predicted speedup', 'measured / predicted (goal >= 90 %)'], speedRows, [false, true, true, true, true, true, true]));
  md.push('');
  if (cacheRows.length) {
    md.push('#### A second question about the same picture (picture cache warm) against the first, 1 vision token');
    md.push('');
    md.push(
      "Both through `ask()` in new conversations, TTFT as the answers report it (the call to the first token, with the input's decoding and hashing); the second question's pre-fusion prefix (the picture rows' keys/values in each pre-fusion layer and its vision token) comes from the model's picture cache, so it runs no CLIP, no compressor and only its text rows through pre-fusion, over the cached 577 rows. FLOPs from each prompt's own length. Medians of alternating runs, each on a fresh picture.",
    );
    md.push('');
    md.push(
      table(
        ['backbone', 'first question TTFT ms', 'second question TTFT ms', 'speedup', 'FLOPs first', 'FLOPs second', 'FLOPs the cache saves', 'FLOPs-predicted speedup', 'prefix held per picture'],
        cacheRows.map((c) => [
          c.backbone,
          fmt(c.firstMs),
          fmt(c.secondMs),
          `${fmt(c.firstMs / c.secondMs, 2)}x`,
          flops(c.firstFlops),
          flops(c.secondFlops),
          `${flops(c.firstFlops - c.secondFlops)} (${fmt((100 * (c.firstFlops - c.secondFlops)) / c.firstFlops, 0)} %)`,
          `${fmt(c.firstFlops / c.secondFlops, 2)}x`,
          `${fmt(c.prefixMB, 2)} MB`,
        ]),
        [false, true, true, true, true, true, true, true, true],
      ),
    );
    md.push('');
  }
  // The formulas applied to the paper's model: a check of the FLOPs column against the paper's calflops counts.
  const p15 = llavaV15(VICUNA_7B, CLIP_L_336, L);
  const pMini = llavaMini(VICUNA_7B, CLIP_L_336, 4, 1, L);
  md.push('#### The paper (spec 8.1) beside the same formulas applied to its model');
  md.push('');
  md.push(
    table(
      ['', 'LLaVA-v1.5 (576 tokens)', 'LLaVA-Mini (1 token)', 'speedup'],
      [
        ['paper: TFLOPs (calflops, Vicuna-7B, CLIP-L/336)', '8.55', '1.96', '4.36x by FLOPs'],
        [`our formulas on that config, L = ${L}`, fmt(total(p15) / 1e12, 2), fmt(total(pMini) / 1e12, 2), `${fmt(total(p15) / total(pMini), 2)}x`],
        ['paper: latency on an A100, ms', '113.04', '38.64', '2.93x measured (67 % of the FLOPs ratio)'],
        ...summary.map((s) => [`ours (${s.backbone}), TTFT speedup`, '', '', `${fmt(s.measured, 2)}x measured vs ${fmt(s.predicted, 2)}x predicted (${fmt((100 * s.measured) / s.predicted, 0)} %)`]),
      ],
      [false, true, true, false],
    ),
  );
  md.push('');
  md.push(
    `Our formulas give encoder ${fmt(p15.encoder / 1e12, 3)} T, projector ${fmt(p15.projector / 1e12, 3)} T and LLM ${fmt(p15.llm / 1e12, 3)} T for v1.5 (paper: 0.349 / 0.024 / 8.177), and pre-fusion ${fmt(pMini.prefusion / 1e12, 3)} T for LLaVA-Mini (paper Table 14: 0.125, Table 6 implies about 1.0; spec 3.4).`,
  );
  const plots = await plot(rows, quick);
  return { markdown: md.join('\n'), plots, summary };
}

async function plot(rows: Row[], _quick: boolean): Promise<string[]> {
  const files: string[] = [];
  for (const b of BACKBONES) {
    const rs = rows.filter((r) => r.backbone === b.name);
    if (!rs.length) continue;
    const file = path.join(ROOT, 'bench', 'plots', `headline-${b.name}.png`);
    const categories = rs.map((r) => (r.tokens === 576 ? 'v1.5 (576)' : `Mini (${r.tokens})`));
    const svg = barChart({
      title: `Time to first token by stage, ${b.name} backbone (ms, medians)`,
      categories,
      series: [
        { name: 'encoder', values: rs.map((r) => r.ms.encoder) },
        { name: 'compressor', values: rs.map((r) => r.ms.compressor) },
        { name: 'projector / pre-fusion', values: rs.map((r) => r.ms.projector + r.ms.prefusion) },
        { name: 'LLM prefill', values: rs.map((r) => r.ms.prefill) },
        { name: 'TTFT', values: rs.map((r) => r.ms.ttft) },
      ],
      yLabel: 'ms',
      labels: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)),
    });
    await savePng(svg, file);
    files.push(file);
  }
  const speed: { label: string; measured: number; predicted: number }[] = [];
  for (const b of BACKBONES) {
    const base = rows.find((r) => r.backbone === b.name && r.tokens === 576);
    if (!base) continue;
    for (const r of rows.filter((x) => x.backbone === b.name && x.pipeline === 'LLaVA-Mini')) {
      speed.push({ label: `${b.name}, ${r.tokens}`, measured: base.ms.ttft / r.ms.ttft, predicted: total(base.flops) / total(r.flops) });
    }
  }
  if (speed.length) {
    const file = path.join(ROOT, 'bench', 'plots', 'headline-speedup.png');
    await savePng(
      barChart({
        title: 'LLaVA-Mini speedup over v1.5 style: measured TTFT vs FLOPs-predicted',
        categories: speed.map((s) => s.label),
        series: [
          { name: 'measured (TTFT ratio)', values: speed.map((s) => s.measured) },
          { name: 'predicted (FLOPs ratio)', values: speed.map((s) => s.predicted) },
        ],
        yLabel: 'speedup (x)',
        xLabel: 'backbone, vision tokens',
        labels: (v) => v.toFixed(2),
      }),
      file,
    );
    files.push(file);
  }
  return files;
}
