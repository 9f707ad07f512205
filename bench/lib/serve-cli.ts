// `llava-mini serve` as users start it (the built CLI in a child process), for the benches that load a
// real server: its URL once it says it is ready, its /metrics read as numbers, and a SIGTERM stop.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './common.js';

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** What the server printed on stderr so far. */
  stderr(): string;
  /** CPU seconds the server has used so far (Linux: from /proc; 0 elsewhere), for LoadMeter.addOwn. */
  cpuSeconds(): number;
  /** SIGTERM (a drain), resolved with the exit code. */
  stop(): Promise<number | null>;
}

export async function startServe(args: string[]): Promise<ServeProcess> {
  const cli = path.join(ROOT, 'packages/cli/dist/cli.js');
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m && /ready:/.test(err)) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`llava-mini serve exited (${code}): ${err}`)));
  });
  return {
    url,
    child,
    stderr: () => err,
    cpuSeconds: () => {
      try {
        return cpuSecondsOf(child.pid as number);
      } catch {
        return 0;
      }
    },
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

/** User + system CPU seconds of a process: fields 14 and 15 of /proc/PID/stat (after the parenthesised name), in clock ticks. */
export function cpuSecondsOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Every sample of /metrics as `name{labels}` -> value. */
export async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** The sum of every series of a metric (all label sets). */
export const total = (m: Map<string, number>, name: string): number => [...m].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((a, [, v]) => a + v, 0);
