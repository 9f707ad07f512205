// The CLI as users run it: the committed bin shim (`npx llava-mini` runs the same file), in a user's
// shell, with none of the switches CI exports.
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const BIN = path.resolve(__dirname, '../bin/llava-mini.js');
export const ASSETS = path.join(ROOT, 'examples/assets');

const { TURBO_TELEMETRY_DISABLED: _a, DO_NOT_TRACK: _b, ORT_DISABLE_TELEMETRY: _c, LLAVA_MINI_DEBUG: _d, ...shell } = process.env;
/** A user's environment: the shim must switch onnxruntime's telemetry off by itself. */
export const userEnv: NodeJS.ProcessEnv = { ...shell, FORCE_COLOR: '0' };

export interface CliOptions {
  /** What the command reads on stdin. */
  input?: string;
  /** Added to (or, as undefined, removed from) the user's environment. */
  env?: Record<string, string | undefined>;
}

/** Run `llava-mini ...args` to its end. */
export function cli(args: string[], { input = '', env = {} }: CliOptions = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'utf8', env: { ...userEnv, ...env }, maxBuffer: 1 << 26 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, pid: r.pid };
}

/** `llava-mini ...args` left running (a worker, a server, a run to interrupt), with its output gathered. */
export function spawnCli(args: string[], { env = {}, detached = false }: Pick<CliOptions, 'env'> & { detached?: boolean } = {}) {
  // detached: a process group of its own, as a terminal's foreground job (a signal to -pid reaches all of it).
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...userEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { child, exited, stdout: () => stdout, stderr: () => stderr, output: () => stdout + stderr };
}

/** Poll `check` until it holds (a file written, a job running), or fail after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
