// A worker as a thread (the default: it shares the server's process and starts fast) or as a process
// of its own, for servers that must outlive a worker's worst death: an abort in native code, the
// kernel's OOM killer, or a kill while onnxruntime runs a session, which in a thread takes the whole
// process with it (docs/reliability.md). Both speak the messages of protocol.ts.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

export type Isolation = 'thread' | 'process';
export const ISOLATIONS: readonly Isolation[] = ['thread', 'process'];

/** Where a process worker finds its WorkerInit (a thread gets it as workerData). */
export const WORKER_INIT_ENV = 'LLAVA_MINI_WORKER_INIT';

export interface WorkerHandle {
  /** The process the worker runs in: its own for a process worker (undefined if it could not start), the server's for a thread. */
  readonly pid: number | undefined;
  /** Throws if the worker can no longer be reached. */
  post(m: ToWorker, transfer?: ArrayBuffer[]): void;
  onMessage(f: (m: FromWorker) => void): void;
  /** An error the worker threw that nothing caught (threads), or one starting the process. */
  onError(f: (err: Error) => void): void;
  /** Once, when it has stopped: how (its exit code, or the signal that killed it). */
  onExit(f: (how: string) => void): void;
  /** Stop it now, whatever it is running. */
  kill(): void;
}

export function startWorker(file: URL, init: WorkerInit, isolation: Isolation): WorkerHandle {
  return isolation === 'process' ? processWorker(file, init) : threadWorker(file, init);
}

function threadWorker(file: URL, init: WorkerInit): WorkerHandle {
  const worker = new Worker(file, { workerData: init });
  return {
    pid: process.pid,
    post: (m, transfer) => worker.postMessage(m, transfer),
    onMessage: (f) => void worker.on('message', f),
    onError: (f) => void worker.on('error', f),
    onExit: (f) => void worker.once('exit', (code) => f(`exit code ${code}`)),
    kill: () => void worker.terminate(),
  };
}

function processWorker(file: URL, init: WorkerInit): WorkerHandle {
  // A fresh Node: no flags of the parent's (a test runner's loaders, but also --max-old-space-size:
  // NODE_OPTIONS is what reaches a worker process). The advanced serialization carries the decoded
  // pictures' typed arrays as a thread's messages do (copied).
  const child: ChildProcess = fork(fileURLToPath(file), [], {
    serialization: 'advanced',
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [WORKER_INIT_ENV]: JSON.stringify(init) },
  });
  return {
    pid: child.pid,
    post: (m) => {
      if (!child.connected) throw new Error('the worker process has exited');
      // A send that fails (the process died meanwhile) is answered by its exit, not by an error event.
      child.send(m, () => {});
    },
    onMessage: (f) => void child.on('message', (m) => f(m as FromWorker)),
    onError: (f) => void child.on('error', f),
    onExit: (f) => {
      let told = false;
      const once = (how: string) => {
        if (!told) f(how);
        told = true;
      };
      // 'close' comes after the IPC channel has delivered everything the process sent ('exit' may
      // come before its last messages); a process that never started only emits 'error'.
      child.once('close', (code, signal) => once(signal ? `killed by ${signal}` : `exit code ${code}`));
      child.once('error', (err) => child.pid === undefined && once(`could not start: ${err.message}`));
    },
    kill: () => void child.kill('SIGKILL'),
  };
}
