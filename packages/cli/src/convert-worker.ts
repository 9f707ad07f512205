// Runs `llava-mini convert` off the CLI's main thread. Building a graph is one long synchronous loop
// (minutes for an 8B checkpoint), during which a SIGINT handler on the same thread could not run:
// here the main thread stays free to terminate this worker on Ctrl-C and remove the partial folder.
import { parentPort, workerData } from 'node:worker_threads';
import { LlavaMiniError } from '@llava-mini/core';
import { convertCheckpoint, type ConvertOptions } from '@llava-mini/pipeline/node';

export interface ConvertJob {
  checkpoint: string;
  out: string;
  options: Omit<ConvertOptions, 'onProgress'>;
}

export type ConvertReply =
  | { kind: 'progress'; event: Parameters<NonNullable<ConvertOptions['onProgress']>>[0] }
  | { kind: 'done'; manifest: Awaited<ReturnType<typeof convertCheckpoint>> }
  | { kind: 'error'; code?: LlavaMiniError['code']; message: string; stack?: string };

const port = parentPort;
if (port) {
  const job = workerData as ConvertJob;
  const send = (m: ConvertReply) => port.postMessage(m);
  try {
    const manifest = await convertCheckpoint(job.checkpoint, job.out, { ...job.options, onProgress: (event) => send({ kind: 'progress', event }) });
    send({ kind: 'done', manifest });
  } catch (err) {
    const e = err as Error;
    send({ kind: 'error', code: err instanceof LlavaMiniError ? err.code : undefined, message: e?.message ?? String(err), stack: e?.stack });
  }
}
