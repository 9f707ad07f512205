/**
 * Table 4, backends: every stage of one image question on onnxruntime-node (CPU) and onnxruntime-web
 * (WASM, threads on), same model files and inputs, medians of alternating runs, time ratio.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { argmax } from '@llava-mini/llm';
import type { ModelParts } from '@llava-mini/pipeline';
import { loadParts, type NodeInput } from '@llava-mini/pipeline/node';
import { fmt, log, median, now, ROOT, table } from './lib/common.js';
import { ensureModel, promptIds, randomImage, timeMini } from './lib/models.js';
import { barChart, savePng } from './lib/plot.js';
import { BACKBONES, modelName } from './headline.js';

type StageName = 'encoder' | 'compressor' | 'pre-fusion' | 'LLM prefill' | 'LLM decode step';
const NAMES: StageName[] = ['encoder', 'compressor', 'pre-fusion', 'LLM prefill', 'LLM decode step'];

async function once(parts: ModelParts<NodeInput>, ids: number[], seed: number, steps: number): Promise<Record<StageName, number>> {
  const seq = parts.llm.sequence();
  const ms = await timeMini(parts, ids, randomImage(seed), seq);
  const decode: number[] = [];
  let id = 0;
  for (let i = 0; i < steps; i++) {
    const t = now();
    id = argmax(await seq.step(id));
    decode.push(now() - t);
  }
  seq.dispose();
  return { encoder: ms.encoder, compressor: ms.compressor, 'pre-fusion': ms.prefusion, 'LLM prefill': ms.prefill, 'LLM decode step': median(decode) };
}

export async function backends(quick: boolean, runs: number): Promise<{ markdown: string; plots: string[] }> {
  const backbone = BACKBONES.find((b) => b.name === (quick ? 'small' : 'large')) ?? BACKBONES[0];
  const { converted } = await ensureModel(modelName(backbone.name, 1), { ...backbone.options, compressorSize: 1 }, 1024);
  log(`backends: ${backbone.name} backbone, node cpu vs web wasm (${runs} runs)...`);
  const threads = os.cpus().length;
  const node = await loadParts(converted, { device: 'cpu' });
  const web = await loadParts(converted, { device: 'wasm', numThreads: threads });
  const samples: Record<'node' | 'web', Record<StageName, number>[]> = { node: [], web: [] };
  try {
    const ids = promptIds(node.tokenizer);
    const steps = quick ? 4 : 8;
    await once(node, ids, 900, 2);
    await once(web, ids, 901, 2);
    for (let r = 0; r < runs; r++) {
      samples.node.push(await once(node, ids, 700 + r, steps));
      samples.web.push(await once(web, ids, 700 + r, steps)); // the same picture on both
    }
  } finally {
    await node.dispose();
    await web.dispose();
  }
  const med = (which: 'node' | 'web', s: StageName) => median(samples[which].map((x) => x[s]));
  const rows = NAMES.map((s) => [s, fmt(med('node', s), 1), fmt(med('web', s), 1), `${fmt(med('web', s) / med('node', s), 2)}x`]);
  const md = [
    `The ${backbone.name} backbone with 1 vision token (fp32, same converted files), one image question; medians of ${runs} alternating runs after a warm-up; decode: median step after the prefill. WASM with ${threads} threads.`,
    '',
    table(['stage', 'node CPU ms', 'web WASM ms', 'WASM / node'], rows, [false, true, true, true]),
  ];
  const file = path.join(ROOT, 'bench', 'plots', 'backends.png');
  await savePng(
    barChart({
      title: `Stage times, onnxruntime-node CPU vs onnxruntime-web WASM (${backbone.name} backbone)`,
      categories: NAMES,
      series: [
        { name: 'node CPU', values: NAMES.map((s) => med('node', s)) },
        { name: 'web WASM', values: NAMES.map((s) => med('web', s)) },
      ],
      yLabel: 'ms (median)',
      labels: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)),
    }),
    file,
  );
  return { markdown: md.join('\n'), plots: [file] };
}
