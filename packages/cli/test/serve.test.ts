// `llava-mini serve` as users start it: a real process, drained by SIGTERM.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { spawnCli, waitFor } from './fixtures.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-serve-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** The server's process, with the URL it says it listens on and when it says it is ready. */
function start(...args: string[]) {
  return startWith({}, ...args);
}

function startWith(options: { detached?: boolean }, ...args: string[]) {
  const run = spawnCli(['serve', ...args], options);
  let onUrl: (u: string) => void;
  let onReady: () => void;
  const url = new Promise<string>((r) => (onUrl = r));
  const ready = new Promise<void>((r) => (onReady = r));
  run.child.stderr.on('data', () => {
    const m = /listening on (http:\/\/\S+)/.exec(run.stderr());
    if (m) onUrl(m[1]);
    if (/ready:/.test(run.stderr())) onReady();
  });
  return { child: run.child, url, ready, stderr: run.stderr, exit: run.exited };
}

/** A long streamed request, once its first token is out (it is running); `rest()` reads it to its end. */
async function runningStream(url: string) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 2000, ignore_eos: true, stream: true }),
  });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  return {
    async rest() {
      let body = '';
      for (let r = await reader.read(); !r.done; r = await reader.read()) body += new TextDecoder().decode(r.value);
      return body;
    },
  };
}

/** Linux: the processes whose parent is `pid`, and whether a process runs (a zombie does not). */
const stat = (pid: number | string) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '';
const childrenOf = (pid: number) =>
  fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return Number(stat(d).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  }).map(Number);
const alive = (pid: number) => {
  try {
    return stat(pid)[0] !== 'Z';
  } catch {
    return false;
  }
};

describe('llava-mini serve (CLI)', () => {
  it.each([['thread'], ['process']])('serves (%s workers), and on SIGTERM finishes the running request, refuses new ones, and exits 0', async (isolation) => {
    const s = start('--model', inject('modelDir'), '--port', '0', '--isolation', isolation);
    const url = await s.url;
    await s.ready;
    const stream = await runningStream(url);
    s.child.kill('SIGTERM');
    expect((await stream.rest()).trim().endsWith('data: [DONE]')).toBe(true);
    expect(await s.exit).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM: finishing 1 request\(s\), refusing new ones/);
  });

  it('process workers: Ctrl-C (SIGINT to the whole process group) drains the running request as with threads', async () => {
    const s = startWith({ detached: true }, '--model', inject('modelDir'), '--port', '0', '--isolation', 'process');
    const url = await s.url;
    await s.ready;
    const stream = await runningStream(url);
    process.kill(-(s.child.pid as number), 'SIGINT');
    expect((await stream.rest()).trim().endsWith('data: [DONE]')).toBe(true);
    expect(await s.exit).toBe(0);
    expect(s.stderr()).not.toMatch(/worker crashed|worker_exited/);
  });

  it.skipIf(!fs.existsSync('/proc/self/stat'))('process workers: a server killed outright (SIGKILL) takes its workers with it', async () => {
    const s = start('--model', inject('modelDir'), '--port', '0', '--isolation', 'process', '--workers', '2');
    await s.url;
    await s.ready;
    const workers = childrenOf(s.child.pid as number);
    expect(workers).toHaveLength(2);
    s.child.kill('SIGKILL');
    await s.exit;
    await waitFor('the worker processes to exit', () => workers.every((pid) => !alive(pid)), 20_000);
  });

  it('SIGTERM while the workers load the model: a clean exit 0, no error, no file left behind', async () => {
    // The server's own temporary folders (other processes may come and go in the same place).
    const temps = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('llava-serve-'));
    const before = temps();
    const s = start('--model', inject('modelDir'), '--port', '0');
    await s.url;
    // Still loading (the ready line comes after the workers have loaded).
    expect(s.stderr()).not.toMatch(/ready:/);
    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM: finishing 0 request\(s\)/);
    expect(s.stderr()).toMatch(/stopped/);
    expect(s.stderr()).not.toMatch(/^llava-mini: |worker crashed|ready:/m);
    expect(temps()).toEqual(before);
  });

  it('a model that cannot be loaded is one line and exit 1', async () => {
    const s = start('--model', path.join(scratch, 'missing'), '--port', '0');
    expect(await s.exit).toBe(1);
    expect(s.stderr().trim().split('\n').at(-1)).toMatch(/^llava-mini: MODEL_FILES: .*missing: does not exist$/);
  });
});
