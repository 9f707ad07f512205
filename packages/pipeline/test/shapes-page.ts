// Page script for shapes-model.test.ts, bundled with esbuild and run in headless Chromium: load the
// served demo model through the package's browser entry, answer each served question about its
// served picture (a fresh conversation each, as `llava-mini eval` asks), and leave the answers on
// window.__result.
import { LlavaMini } from '@llava-mini/pipeline/web';

export interface EvalPageResult {
  device?: string;
  answers?: { text: string; ids: number[] }[];
  error?: string;
}

const query = new URLSearchParams(location.search);

async function main(): Promise<EvalPageResult> {
  const questions = (await (await fetch(query.get('questions') as string)).json()) as { image: string; question: string }[];
  const model = await LlavaMini.fromPretrained(query.get('model') as string, {
    device: query.get('device') as 'wasm' | 'webgpu',
    numThreads: 1,
    wasmPaths: query.get('wasm') as string,
  });
  try {
    const answers: EvalPageResult['answers'] = [];
    for (const q of questions) {
      const r = await model.ask(q.image, q.question, { maxNewTokens: Number(query.get('maxNewTokens') ?? 16) }).done();
      answers.push({ text: r.text, ids: r.ids });
    }
    return { device: model.parts.llm.device, answers };
  } finally {
    await model.dispose();
  }
}

void main()
  .catch((err: unknown): EvalPageResult => ({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }))
  .then((r) => {
    (window as unknown as { __result: EvalPageResult }).__result = r;
  });
