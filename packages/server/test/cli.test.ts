// `llava-mini serve` as users start it: the pipeline's CLI, a real process, drained by SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, inject, it } from 'vitest';

const CLI = path.resolve(__dirname, '../../pipeline/dist/cli.js');

function start(...args: string[]): { child: ChildProcess; url: Promise<string>; ready: Promise<void>; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  let err = '';
  let onUrl: (u: string) => void;
  let onReady: () => void;
  const url = new Promise<string>((r) => (onUrl = r));
  const ready = new Promise<void>((r) => (onReady = r));
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
    const m = /listening on (http:\/\/\S+)/.exec(err);
    if (m) onUrl(m[1]);
    if (/ready:/.test(err)) onReady();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, url, ready, stderr: () => err, exit };
}

describe('llava-mini serve (CLI)', () => {
  it('serves, and on SIGTERM finishes the running request, refuses new ones, and exits 0', async () => {
    const s = start('--model', inject('modelDir'), '--port', '0');
    const url = await s.url;
    await s.ready;
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 2000, ignore_eos: true, stream: true }),
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read(); // the first token is out: the request is running
    s.child.kill('SIGTERM');
    let body = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) body += new TextDecoder().decode(r.value);
    expect(body.trim().endsWith('data: [DONE]')).toBe(true);
    expect(await s.exit).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM: finishing 1 request\(s\), refusing new ones/);
  });

  it('a model that cannot be loaded is one line and exit 1', async () => {
    const s = start('--model', path.join(inject('scratchDir'), 'missing'), '--port', '0');
    expect(await s.exit).toBe(1);
    expect(s.stderr().trim().split('\n').at(-1)).toMatch(/^llava-mini: MODEL_FILES: .*missing: does not exist$/);
  });
});
