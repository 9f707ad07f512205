// A short load test (CI): 100 concurrent streaming requests against one worker and a bounded
// queue. None is lost: each either completes (role chunk .. finish chunk, [DONE]) or gets 429.
// Each answer is 200 tokens (ignore_eos), so the burst outruns the worker on any machine.
// The full soak (RSS over 1,000 requests, /health latency, tokens/s at 1/4/8 clients) is bench/serve.ts.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ServerHandle, startServer } from '../src/index.js';

const QUEUE = 12;
let server: ServerHandle;

beforeAll(async () => {
  server = await startServer({ model: inject('modelDir'), port: 0, queue: QUEUE });
  await server.ready;
});
afterAll(() => server?.close());

async function streamOnce(i: number): Promise<{ status: number; retryAfter: string | null; complete: boolean; tokens: number }> {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: `Request ${i}` }], max_tokens: 200, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, retryAfter: res.headers.get('retry-after'), complete: false, tokens: 0 };
  const events = text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  const usage = chunks.at(-1)?.usage;
  return { status: 200, retryAfter: null, complete: events.at(-1) === '[DONE]' && finish !== undefined && usage !== undefined, tokens: usage?.completion_tokens ?? 0 };
}

describe('load: 100 concurrent streaming requests, one worker, a queue of 12', () => {
  it('none lost: the overflow gets 429 with Retry-After, every accepted request completes', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => streamOnce(i)));
    const accepted = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    expect(accepted.length + refused.length).toBe(100);
    // At least the running one and a full queue were taken; the burst outruns one worker, so some are refused.
    expect(accepted.length).toBeGreaterThanOrEqual(QUEUE + 1);
    expect(refused.length).toBeGreaterThan(0);
    expect(accepted.every((r) => r.complete && r.tokens > 0)).toBe(true);
    expect(refused.every((r) => r.retryAfter === '1')).toBe(true);
    const health = await (await fetch(`${server.url}/health`)).json();
    expect(health).toMatchObject({ status: 'ok', running: 0, queued: 0 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain(`llava_mini_requests_total{status="200",stream="true"} ${accepted.length}`);
    expect(metrics).toContain(`llava_mini_requests_total{status="429",stream="true"} ${refused.length}`);
    console.log(`load: ${accepted.length} completed, ${refused.length} refused with 429`);
  });
});
