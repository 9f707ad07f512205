// Clients that misbehave, against a real server: headers or a body sent a byte at a time, idle
// keep-alive connections, more connections than the cap, clients that vanish mid-upload and
// mid-stream, 10,000 content parts, a 100 MB body, the wrong content types. Meanwhile a well-behaved
// client is served (/health and a streamed answer). The timeouts are short here so the test is quick;
// bench/misbehave.ts runs the same with hundreds of connections and records the latencies.
import * as http from 'node:http';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ServerHandle, startServer } from '../src/index.js';

let server: ServerHandle;
let port: number;
const CAP = 300;

beforeAll(async () => {
  server = await startServer({
    model: inject('modelDir'),
    port: 0,
    parallel: 2,
    bodyLimit: 1 << 20,
    headersTimeoutMs: 1_000,
    requestTimeoutMs: 2_000,
    keepAliveTimeoutMs: 1_000,
    maxConnections: CAP,
  });
  port = Number(new URL(server.url).port);
  await server.ready;
});
afterAll(() => server?.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw connection: what the server sent back, and when it closed the connection. */
function connect(): Promise<{ socket: net.Socket; received: () => string; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (b) => (data += b.toString()));
    socket.on('error', () => {});
    const closed = new Promise<number>((r) => socket.on('close', () => r(performance.now())));
    socket.once('connect', () => resolve({ socket, received: () => data, closed }));
    socket.once('error', reject);
  });
}

/** Writes `text` one byte every `ms` until the server closes the connection. */
function dribble(socket: net.Socket, text: string, ms: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]);
  }, ms);
  socket.once('close', () => clearInterval(timer));
}

/** A well-behaved client while something else runs: /health every 20 ms, and one streamed answer's time to first token. */
async function wellBehaved(during: Promise<unknown>) {
  const health: number[] = [];
  let done = false;
  void during.finally(() => (done = true));
  const poll = (async () => {
    while (!done) {
      const t = performance.now();
      const res = await fetch(`${server.url}/health`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      health.push(performance.now() - t);
      await sleep(20);
    }
  })();
  const t = performance.now();
  const res = await post({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, stream: true });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  const ttft = performance.now() - t;
  while (!(await reader.read()).done);
  await during;
  await poll;
  health.sort((a, b) => a - b);
  return { ttft, healthP99: health[Math.floor(health.length * 0.99)] ?? Number.NaN, healthChecks: health.length };
}

const post = (body: unknown, type = 'application/json') => fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return Number(line?.split(' ').at(-1));
}

async function until(check: () => Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(25);
  }
}

describe('slow clients', () => {
  it('150 connections sending their headers a byte at a time are closed with 408 after --headers-timeout, others served meanwhile', async () => {
    const conns = await Promise.all(Array.from({ length: 150 }, () => connect()));
    const t0 = performance.now();
    for (const c of conns) dribble(c.socket, 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n', 50);
    const all = Promise.all(conns.map((c) => c.closed));
    const served = await wellBehaved(all);
    const closedAt = await all;
    // Closed after the 1 s headers timeout (Node checks it every 250 ms here), well before the dribble
    // would end (5 s) and before Node's default check (every 30 s) could; the margin is for a busy machine.
    expect(Math.max(...closedAt) - t0).toBeLessThan(4_500);
    expect(Math.min(...closedAt) - t0).toBeGreaterThan(900);
    expect(conns.every((c) => c.received().startsWith('HTTP/1.1 408'))).toBe(true);
    console.log(`slow headers x150: /health p99 ${served.healthP99.toFixed(1)} ms over ${served.healthChecks}, TTFT ${served.ttft.toFixed(0)} ms`);
  });

  it('150 connections sending a body a byte at a time are closed with 408 after --request-timeout', async () => {
    const conns = await Promise.all(Array.from({ length: 150 }, () => connect()));
    const t0 = performance.now();
    for (const c of conns) {
      c.socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
      dribble(c.socket, `{"messages":[{"role":"user","content":"${'a'.repeat(960)}"}]}`, 50);
    }
    const all = Promise.all(conns.map((c) => c.closed));
    const served = await wellBehaved(all);
    const closedAt = await all;
    expect(Math.max(...closedAt) - t0).toBeLessThan(6_000);
    expect(Math.min(...closedAt) - t0).toBeGreaterThan(1_900);
    expect(conns.every((c) => c.received().startsWith('HTTP/1.1 408'))).toBe(true);
    console.log(`slow bodies x150: /health p99 ${served.healthP99.toFixed(1)} ms over ${served.healthChecks}, TTFT ${served.ttft.toFixed(0)} ms`);
  });

  it('idle keep-alive connections close after --keep-alive-timeout; past --max-connections new ones are dropped, and served again once they close', async () => {
    // 200 clients each make one request on a kept-alive connection, then stay idle.
    const idle = await Promise.all(Array.from({ length: 200 }, () => connect()));
    for (const c of idle) c.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(async () => idle.every((c) => c.received().startsWith('HTTP/1.1 200')));
    const t0 = performance.now();
    // 150 more that send nothing: 100 fit under the cap of 300, the rest are closed as they arrive.
    const silent = await Promise.all(Array.from({ length: 150 }, () => connect()));
    const closedAt = await Promise.all(idle.map((c) => c.closed));
    const silentClosed = await Promise.all(silent.map((c) => c.closed));
    // The keep-alive ones after ~1 s; of the silent ones, those past the cap at once, the others by the headers timeout.
    expect(Math.max(...closedAt) - t0).toBeLessThan(5_000);
    // Dropped at once, not at the 1 s headers timeout like the 100 under the cap.
    expect(silentClosed.filter((t) => t - t0 < 900).length).toBeGreaterThanOrEqual(50);
    expect(Math.max(...silentClosed) - t0).toBeLessThan(5_000);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });
});

describe('clients that vanish', () => {
  it('mid-upload: 20 clients send half a body and disconnect; nothing is queued, run or held', async () => {
    const answered = async () => (await (await fetch(`${server.url}/metrics`)).text()).match(/^llava_mini_requests_total\{.*$/gm)?.join() ?? '';
    const before = await answered();
    // What caches kept across requests hold (a video's opening): no request of this test adds to it.
    const kept = await metric('llava_mini_kv_cache_bytes');
    const conns = await Promise.all(Array.from({ length: 20 }, () => connect()));
    for (const c of conns) {
      c.socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n');
      c.socket.write(`{"messages":[{"role":"user","content":"${'a'.repeat(250_000)}`);
    }
    await sleep(100);
    for (const c of conns) c.socket.destroy();
    await Promise.all(conns.map((c) => c.closed));
    const health = await (await fetch(`${server.url}/health`)).json();
    expect(health).toMatchObject({ status: 'ok', running: 0, queued: 0 });
    expect(await metric('llava_mini_kv_cache_bytes')).toBe(kept);
    expect(await metric('llava_mini_worker_requests')).toBe(0);
    // None of them reached the handler: no request was counted.
    expect(await answered()).toBe(before);
  });

  it('mid-stream: the conversation, its KV cache and its picture are freed at once (the metrics show it)', async () => {
    const cancelledBefore = await metric('llava_mini_generations_cancelled_total');
    const kept = await metric('llava_mini_kv_cache_bytes');
    const image = `data:image/png;base64,${(await import('node:fs')).readFileSync(`${__dirname}/../../../examples/assets/house.png`).toString('base64')}`;
    const controllers = [new AbortController(), new AbortController()];
    const readers = await Promise.all(
      controllers.map(async (c, i) => {
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: `Go ${i}` }] }], max_tokens: 4000, ignore_eos: true, stream: true }),
          signal: c.signal,
        });
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        await reader.read();
        return reader;
      }),
    );
    // Both generating: their KV caches are held.
    expect(await metric('llava_mini_kv_cache_bytes')).toBeGreaterThan(kept);
    expect(await metric('llava_mini_worker_requests')).toBe(2);
    const pictures = await metric('llava_mini_picture_cache_entries');
    const t = performance.now();
    for (const c of controllers) c.abort();
    for (const r of readers) await r.cancel().catch(() => {});
    await until(async () => (await metric('llava_mini_kv_cache_bytes')) === kept && (await metric('llava_mini_worker_requests')) === 0, 5_000);
    const freedMs = performance.now() - t;
    expect(await metric('llava_mini_generations_cancelled_total')).toBe((Number.isNaN(cancelledBefore) ? 0 : cancelledBefore) + 2);
    // The picture cache is a bounded memo across requests (not the conversation's): it keeps the one picture, no more.
    expect(await metric('llava_mini_picture_cache_entries')).toBe(pictures);
    expect(await (await fetch(`${server.url}/health`)).json()).toMatchObject({ running: 0, queued: 0 });
    console.log(`two streams cut mid-answer: their KV caches freed and no worker request left after ${freedMs.toFixed(0)} ms`);
  });
});

describe('bodies that are too much', () => {
  it('10,000 content parts: a proper answer (text: too long for the context; images: too many), quickly', async () => {
    const t = performance.now();
    const text = await post({ messages: [{ role: 'user', content: Array.from({ length: 10_000 }, () => ({ type: 'text', text: 'a b' })) }], max_tokens: 2 });
    expect(text.status).toBe(400);
    expect((await text.json()).error.code).toBe('context_length_exceeded');
    const images = await post({ messages: [{ role: 'user', content: Array.from({ length: 10_000 }, () => ({ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } })) }] });
    expect(images.status).toBe(400);
    expect((await images.json()).error.code).toBe('too_many_images');
    expect(performance.now() - t).toBeLessThan(20_000);
    expect((await (await fetch(`${server.url}/health`)).json()).running).toBe(0);
  });

  it('a 100 MB base64 image: 413 once the limit is passed, the rest never read (chunked) or never sent (declared length)', async () => {
    const send = (declared: boolean) =>
      new Promise<{ status: number; written: number }>((resolve, reject) => {
        const total = 100 * 2 ** 20;
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...(declared ? { 'content-length': String(total) } : {}) } });
        let written = 0;
        let answered = false;
        req.on('response', (res) => {
          answered = true;
          res.resume();
          resolve({ status: res.statusCode as number, written });
        });
        req.on('error', (e) => (answered ? undefined : reject(e)));
        const chunk = Buffer.alloc(64 * 1024, 'A');
        const head = Buffer.from('{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,');
        const pump = () => {
          while (!answered && written < total) {
            const piece = written === 0 ? head : chunk;
            written += piece.length;
            if (!req.write(piece)) return req.once('drain', pump);
          }
          if (!answered) req.end();
        };
        pump();
      });
    for (const declared of [false, true]) {
      const r = await send(declared);
      expect(r.status, `declared length: ${declared}`).toBe(413);
      // The limit is 1 MiB: the answer comes long before 100 MB are sent.
      expect(r.written, `declared length: ${declared}`).toBeLessThan(20 * 2 ** 20);
    }
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('a body that is not JSON is refused with 415 before it is read', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonx', '']) {
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }] }) });
      expect(res.status, type).toBe(415);
      expect((await res.json()).error, type).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_media_type' });
    }
    const ok = await post({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 }, 'application/json; charset=utf-8');
    expect(ok.status).toBe(200);
    // A route that does not exist is a 404 whatever its body.
    expect((await fetch(`${server.url}/v1/nothing`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })).status).toBe(404);
  });
});
