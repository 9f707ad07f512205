// Page script for structured-output.test.ts, bundled with esbuild and run in headless Chromium: the
// browser entry loads the served model (WASM) and makes structured-calls.ts's calls, leaving their
// results (or the error) on window.__result.
import { LlavaMini } from '@llava-mini/pipeline/web';
import { type StructuredResults, structuredCalls } from './structured-calls.js';

export type StructuredPageResult = { results?: StructuredResults; error?: string };

const query = new URLSearchParams(location.search);
const param = (name: string): string => query.get(name) ?? '';

async function main(): Promise<StructuredPageResult> {
  const model = await LlavaMini.fromPretrained(param('model'), { device: 'wasm', numThreads: 1, wasmPaths: param('wasm') });
  try {
    // The picture as a URL for ask(), as a data: URL in the completion request (what the Node run gets too).
    const bytes = new Uint8Array(await (await fetch(param('image'))).arrayBuffer());
    const dataUrl = `data:image/png;base64,${btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''))}`;
    return { results: await structuredCalls(model, param('image'), dataUrl) };
  } finally {
    await model.dispose();
  }
}

void main()
  .catch((err: unknown): StructuredPageResult => ({ error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err) }))
  .then((r) => {
    (window as unknown as { __result: StructuredPageResult }).__result = r;
  });
