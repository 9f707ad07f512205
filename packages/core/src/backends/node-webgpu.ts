import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { SessionOptions } from '../backend.js';
import { modelNodes } from '../onnx/scan.js';

/*
 * onnxruntime-node's WebGPU provider, as far as it differs from the other devices:
 *
 * 1. Probing it where there is no GPU makes Dawn and the Vulkan loader write straight to the
 *    process's stderr ("XDG_RUNTIME_DIR is invalid", "Warning: ... While initializing adapter ...
 *    at InitializeImpl (...)"), which no JS setting silences. So the first look happens in a child
 *    process whose stderr is read and condensed into the device's one-line reason; this process
 *    touches WebGPU only once the child found an adapter.
 *
 * 2. Its attention kernels (com.microsoft MultiHeadAttention and GroupQueryAttention) give wrong
 *    results when a call has 32 or more query rows: onnxruntime 1.30 routes those to a one-kernel
 *    flash-attention prefill shader, and on SwiftShader (the software adapter CI has) its output
 *    differs from the CPU's by the size of the values themselves (packages/pipeline/test/
 *    webgpu-node.test.ts keeps the evidence). Below 32 rows the split-reduce kernels are used and
 *    agree to 1e-6; onnxruntime-web's own WebGPU kernels agree at every length. Until a release
 *    fixes it: the LLM runs its prompt in chunks of fewer rows (attentionQueryLimit), and the
 *    other stages' attention nodes (queries: every patch, every prompt row) run on the CPU.
 */

/** The most query rows one attention call may have on onnxruntime-node's WebGPU provider. */
export const NODE_WEBGPU_ATTENTION_QUERY_LIMIT = 31;
/** Operators placed on the CPU provider inside a WebGPU session (see 2. above). */
const ATTENTION_OPS = new Set(['MultiHeadAttention', 'GroupQueryAttention']);
const PROBE_TIMEOUT_MS = 60_000;

const here = typeof __filename === 'string' ? __filename : import.meta.url;

/** The child: load onnxruntime-node, run the probe model (y = x + x) on WebGPU, print 'ok' or why not. */
const CHILD = `
const ort = require(process.argv[1]);
ort.env.logLevel = 'fatal';
(async () => {
  const s = await ort.InferenceSession.create(Buffer.from(process.argv[2], 'base64'), { executionProviders: ['webgpu'], logSeverityLevel: 4 });
  const y = (await s.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) })).y.data;
  await s.release();
  process.stdout.write(y[0] === 2 && y[1] === 4 ? 'ok' : 'the probe model gave a wrong result');
})().catch((e) => process.stdout.write(String((e && e.message) || e)));
`;

/** Condense the child's error and Dawn's stderr lines into one line. */
export function webgpuReason(message: string, stderr: string): string {
  const first = message.split('\n')[0].replace(/^\/\S+:\d+ /, '').trim();
  const adapter = /Failed to get a WebGPU adapter: (.*)$/.exec(first)?.[1]?.trim();
  // Dawn explains each adapter it turned down as "Warning: <why>" followed by " - While initializing adapter".
  const refused = [...stderr.matchAll(/^Warning: (.+?)\.?\s*\n\s*- While initializing adapter/gm)].map((m) => m[1].trim());
  const why = refused.length ? ` (adapters refused: ${[...new Set(refused)].join('; ')})` : '';
  if (adapter) return `Dawn found no usable GPU adapter: ${adapter.replace(/\.$/, '')}${why}`;
  return `${first || 'the WebGPU provider failed to start'}${why}`;
}

/** Whether onnxruntime-node's WebGPU provider runs the probe model, asked in a child process; a reason when not. */
export function webgpuPrecheck(probeModel: Uint8Array): Promise<string | undefined> {
  let ortPath: string;
  try {
    ortPath = createRequire(here).resolve('onnxruntime-node');
  } catch {
    return Promise.resolve('the onnxruntime-node package is not installed');
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-e', CHILD, ortPath, Buffer.from(probeModel).toString('base64')],
      { timeout: PROBE_TIMEOUT_MS, env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' }, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (stdout === 'ok') return resolve(undefined);
        if (!stdout && err) return resolve(`the WebGPU probe process failed (${err.killed ? `no answer in ${PROBE_TIMEOUT_MS / 1000} s` : (err.code ?? err.signal)})`);
        resolve(webgpuReason(stdout, stderr));
      },
    );
  });
}

/**
 * Provider options for a WebGPU session of `model`: its attention nodes go to the CPU, unless the
 * caller keeps every call under the query limit (the LLM, whose prompt is chunked; its attention
 * nodes are inside If branches, which modelNodes does not list, and the chunks stay below the rows
 * that take its GroupQueryAttention branch).
 */
export async function webgpuProviderOptions(model: Uint8Array | string, options: SessionOptions): Promise<Record<string, unknown>> {
  if (options.chunksAttention) return {};
  const bytes = typeof model === 'string' ? new Uint8Array(await readFile(model)) : model;
  const names = modelNodes(bytes).filter((n) => ATTENTION_OPS.has(n.opType) && n.name).map((n) => n.name);
  return names.length ? { forceCpuNodeNames: names } : {};
}
