/**
 * Clients that misbehave (issue 26), against a real `llava-mini serve` with its default limits, and
 * what a well-behaved client sees meanwhile: /health latency (p50, p99, one request every 10 ms) and a
 * streamed answer's time to first token, during each misbehaviour and with none, in one run.
 *
 *   npm run bench -- misbehave [--seconds=N] [--connections=N] [--model=DIR] [--record]
 *
 * Misbehaviours (each for --seconds, default 20: past the 15 s headers timeout): --connections (default 500) connections sending
 * their headers a byte a second; as many sending a body a byte a second; 1,000 idle keep-alive
 * connections; 50 clients at a time vanishing mid-upload; 8 vanishing mid-stream; bodies of 10,000
 * content parts; 100 MB base64 images (2 at a time); bodies in the wrong content type.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { ensureTinyModel } from '@llava-mini/pipeline/node';
import { benchCommand, CACHE, flag, fmt, LoadMeter, log, machine, median, now, option, RESULTS, replaceMarked, ROOT, table } from './lib/common.js';
import { startServe } from './lib/serve-cli.js';

const SECONDS = Number(option('seconds') ?? 20);
const CONNECTIONS = Number(option('connections') ?? 500);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let url = '';
let port = 0;

/** Connections the server (or the network) closed. */
const closed = new WeakSet<net.Socket>();
/** Every connection the current misbehaviour opened. */
let opened: net.Socket[] = [];

/** A raw connection that reads and drops what comes back and swallows errors; resolves once connected (or refused). */
function socket(): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => closed.add(s));
    s.resume();
    opened.push(s);
    s.setNoDelay(true);
    s.once('connect', () => resolve(s));
    s.once('close', () => resolve(s));
  });
}

/** Writes `text` a byte every `ms` until told to stop or the server closes the connection. */
function dribble(s: net.Socket, text: string, ms: number, stop: { done: boolean }): void {
  let i = 0;
  const t = setInterval(() => {
    if (stop.done || s.destroyed || i >= text.length) return clearInterval(t);
    s.write(text[i++]);
  }, ms);
}

/** Keeps `n` loops of `fn` going until stopped. */
function loops(n: number, fn: () => Promise<unknown>, stop: { done: boolean }): Promise<unknown> {
  return Promise.all(Array.from({ length: n }, async () => {
    while (!stop.done) await fn().catch(() => {});
  }));
}

const post = (body: string, type = 'application/json', signal?: AbortSignal) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': type }, body, signal });

/** What a well-behaved client sees for SECONDS: /health every 10 ms, and streamed answers one after another. */
async function observe(): Promise<{ p50: number; p99: number; checks: number; failed: number; ttft: number; answers: number }> {
  const end = now() + SECONDS * 1000;
  const health: number[] = [];
  const ttfts: number[] = [];
  let failed = 0;
  await Promise.all([
    (async () => {
      while (now() < end) {
        const t = now();
        const res = await fetch(`${url}/health`).catch(() => undefined);
        if (res?.status === 200) health.push(now() - t);
        else failed++;
        await res?.arrayBuffer();
        await sleep(10);
      }
    })(),
    (async () => {
      while (now() < end) {
        const t = now();
        const res = await post(JSON.stringify({ messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, stream: true })).catch(() => undefined);
        if (res?.status !== 200 || !res.body) {
          failed++;
          continue;
        }
        const reader = res.body.getReader();
        await reader.read();
        ttfts.push(now() - t);
        while (!(await reader.read()).done);
      }
    })(),
  ]);
  health.sort((a, b) => a - b);
  return { p50: median(health), p99: health[Math.floor(health.length * 0.99)] ?? Number.NaN, checks: health.length, failed, ttft: median(ttfts), answers: ttfts.length };
}

type Misbehaviour = [name: string, start: (stop: { done: boolean }) => Promise<() => string>];

const HEADERS = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n';

const misbehaviours: Misbehaviour[] = [
  ['none', async () => () => ''],
  [
    `${CONNECTIONS} connections sending headers a byte a second`,
    async (stop) => {
      const conns = await Promise.all(Array.from({ length: CONNECTIONS }, socket));
      for (const s of conns) dribble(s, HEADERS, 1000, stop);
      return () => `${conns.filter((s) => closed.has(s)).length} closed by the server`;
    },
  ],
  [
    `${CONNECTIONS} connections sending a body a byte a second`,
    async (stop) => {
      const conns = await Promise.all(Array.from({ length: CONNECTIONS }, socket));
      for (const s of conns) {
        s.write(`${HEADERS}Content-Length: 100000\r\n\r\n`);
        dribble(s, `{"messages":[{"role":"user","content":"${'a'.repeat(1000)}`, 1000, stop);
      }
      return () => `${conns.filter((s) => closed.has(s)).length} closed by the server`;
    },
  ],
  [
    '1000 idle keep-alive connections',
    async () => {
      const conns = await Promise.all(Array.from({ length: 1000 }, socket));
      for (const s of conns) s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      return () => `${conns.filter((s) => closed.has(s)).length} closed by the server (keep-alive timeout)`;
    },
  ],
  [
    '50 clients at a time vanishing mid-upload',
    async (stop) => {
      let n = 0;
      const half = Buffer.from(`${HEADERS}Content-Length: 1000000\r\n\r\n{"messages":[{"role":"user","content":"${'a'.repeat(400_000)}`);
      void loops(
        50,
        async () => {
          const s = await socket();
          s.write(half);
          await sleep(50);
          s.destroy();
          n++;
        },
        stop,
      );
      return () => `${n} uploads cut`;
    },
  ],
  [
    '8 clients at a time vanishing mid-stream',
    async (stop) => {
      let n = 0;
      void loops(
        8,
        async () => {
          const abort = new AbortController();
          const res = await post(JSON.stringify({ messages: [{ role: 'user', content: 'Go' }], max_tokens: 500, ignore_eos: true, stream: true }), 'application/json', abort.signal);
          if (res.status !== 200) return sleep(50);
          await res.body?.getReader().read();
          abort.abort();
          n++;
        },
        stop,
      );
      return () => `${n} streams cut`;
    },
  ],
  [
    'bodies of 10,000 content parts (4 at a time)',
    async (stop) => {
      const body = JSON.stringify({ messages: [{ role: 'user', content: Array.from({ length: 10_000 }, () => ({ type: 'text', text: 'a b' })) }], max_tokens: 2 });
      const statuses = new Map<number, number>();
      void loops(
        4,
        async () => {
          const res = await post(body);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          await res.arrayBuffer();
        },
        stop,
      );
      return () => [...statuses].map(([s, n]) => `${n} x ${s}`).join(', ');
    },
  ],
  [
    '100 MB base64 images (2 at a time)',
    async (stop) => {
      const statuses = new Map<number, number>();
      const chunk = Buffer.alloc(256 * 1024, 'A');
      const once = () =>
        new Promise<void>((resolve) => {
          const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' } });
          let written = 0;
          let answered = false;
          req.on('response', (res) => {
            answered = true;
            statuses.set(res.statusCode as number, (statuses.get(res.statusCode as number) ?? 0) + 1);
            res.resume().on('end', resolve);
          });
          req.on('error', () => resolve());
          req.write('{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,');
          const pump = () => {
            while (!answered && written < 100 * 2 ** 20) {
              written += chunk.length;
              if (!req.write(chunk)) return req.once('drain', pump);
            }
            req.end();
          };
          pump();
        });
      void loops(2, once, stop);
      return () => [...statuses].map(([s, n]) => `${n} x ${s}`).join(', ');
    },
  ],
  [
    'bodies in the wrong content type (4 at a time)',
    async (stop) => {
      const statuses = new Map<number, number>();
      const types = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml'];
      let i = 0;
      void loops(
        4,
        async () => {
          const res = await post(JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }), types[i++ % types.length]);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          await res.arrayBuffer();
        },
        stop,
      );
      return () => [...statuses].map(([s, n]) => `${n} x ${s}`).join(', ');
    },
  ],
  // The quiet baseline again, last: the machine's other load drifts over a run.
  ['none, again', async () => () => ''],
];

async function main(): Promise<void> {
  const meter = new LoadMeter();
  const model = option('model') ?? (await ensureTinyModel(path.join(CACHE, 'models', 'tiny-serve')));
  const server = await startServe(['--model', model, '--parallel', '2']);
  url = server.url;
  port = Number(new URL(url).port);
  const rows: (string | number)[][] = [];
  for (const [name, start] of misbehaviours) {
    const stop = { done: false };
    const report = await start(stop);
    const seen = await observe();
    stop.done = true;
    const what = report();
    // The misbehaving connections still open go now: each row starts from a quiet server.
    for (const s of opened) s.destroy();
    opened = [];
    log(`${name}: /health p50 ${fmt(seen.p50)} ms, p99 ${fmt(seen.p99)} ms (${seen.checks}), TTFT ${fmt(seen.ttft, 0)} ms (${seen.answers}), failed ${seen.failed}; ${what}`);
    rows.push([name, fmt(seen.p50), fmt(seen.p99), seen.checks, fmt(seen.ttft, 0), seen.answers, seen.failed, what]);
    // Let the server shed what is left (the slow connections time out, idle ones close) before the next.
    for (let t = now(); now() - t < 20_000; await sleep(200)) {
      const h = (await (await fetch(`${url}/health`)).json()) as { running: number; queued: number };
      if (h.running === 0 && h.queued === 0) break;
    }
    await sleep(1000);
  }
  meter.addOwn(server.cpuSeconds());
  const exit = await server.stop();
  const markdown = [
    '## Clients that misbehave (issue 26)',
    '',
    `\`${benchCommand('misbehave')}\` on ${machine()}, ${new Date().toISOString().slice(0, 10)}; the machine was shared (${meter.report()}), so compare each row with the first (same run). ` +
      `\`llava-mini serve --parallel 2\` (random-weight tiny model) with its default limits (headers in 15 s, a request in 60 s, keep-alive 5 s, 1,024 connections, 20 MiB bodies). ` +
      `For ${SECONDS} s each, a well-behaved client asked /health every 10 ms and streamed 8-token answers one after another. The server exited ${exit} on SIGTERM after all of it.`,
    '',
    table(['meanwhile', '/health p50 ms', '/health p99 ms', 'checks', 'TTFT ms (median)', 'answers', 'failed', 'the misbehaving side'], rows, [false, true, true, true, true, true, true, false]),
  ].join('\n');
  console.log(markdown);
  if (flag('record')) replaceMarked(RESULTS, 'misbehave', markdown);
}

await main();
