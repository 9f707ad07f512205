// Faults under a running server: a worker that fails mid-request (an error thrown outside any
// request's handling, as a bug would), a model folder that vanishes while loaded, and a full disk
// under an inline video. Each fails only its own requests, in OpenAI's error shape, and the server
// goes on serving. A worker killed outright (SIGKILL, as the OOM killer does) is tested with
// process workers only: a thread torn down under a running onnxruntime session aborts the whole
// process (docs/reliability.md), which is what --isolation process is for.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI, { APIError } from 'openai';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { type ServerHandle, startServer } from '../src/index.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-faults-'));
const servers: ServerHandle[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  if (tmpfs) execFileSync('umount', [tmpfs]);
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function serve(options: Partial<Parameters<typeof startServer>[0]> = {}) {
  const server = await startServer({ model: inject('modelDir'), port: 0, ...options });
  servers.push(server);
  await server.ready;
  return { server, client: new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0 }) };
}

/** The pool's workers and the bodies of the requests each runs (the pool keeps them private). */
type Slot = { worker: { pid: number | undefined; post(m: unknown): void }; jobs: Set<{ body: { messages: { content: string }[] } }> };
// A message the worker's handler cannot read throws outside any request: what a bug in the worker does.
const crash = (slot: Slot | undefined) => slot?.worker.post(null);
const workers = (server: ServerHandle) => (server.pool as unknown as { slots: Slot[] }).slots;
const runningOn = (server: ServerHandle, content: string) => workers(server).find((s) => [...s.jobs].some((j) => j.body.messages[0].content === content));

async function until(check: () => Promise<boolean> | boolean, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const health = async (s: ServerHandle) => {
  const res = await fetch(`${s.url}/health`);
  return { http: res.status, ...((await res.json()) as { status: string; workers: number; running: number; queued: number }) };
};
async function metric(s: ServerHandle, name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
}
const long = (content: string) => ({ model: 'tiny', messages: [{ role: 'user' as const, content }], max_tokens: 4000, ignore_eos: true }) as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;

describe('a worker that dies mid-request', () => {
  it.each(['thread', 'process'] as const)('an error outside any request (%s workers): fails only its own requests (500 in OpenAI shape, or an error event in a stream), is replaced, and the server goes on', async (isolation) => {
    const { server, client } = await serve({ workers: 2, isolation });
    const stream = await client.chat.completions.create({ ...long('streamed'), stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    const other = client.chat.completions.create({ ...long('other'), max_tokens: 300 });
    await until(() => runningOn(server, 'other') !== undefined);
    const victim = runningOn(server, 'streamed');
    expect(victim).toBeDefined();
    expect(victim).not.toBe(runningOn(server, 'other'));
    crash(victim);
    // The stream had its 200 already: the failure comes as an error event, which the client throws.
    const streamed = await (async () => {
      for (let r = await iterator.next(); !r.done; r = await iterator.next());
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(streamed).toBeInstanceOf(APIError);
    expect((streamed as APIError).error).toMatchObject({ type: 'server_error', code: 'worker_exited', message: expect.stringMatching(/^the worker running this request stopped \(.*null.*\); it is being replaced$/) });
    // The request on the other worker is untouched.
    expect((await other).usage?.completion_tokens).toBe(300);
    await until(async () => (await health(server)).workers === 2);
    expect(await metric(server, 'llava_mini_worker_restarts_total')).toBe(1);
    const after = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3 });
    expect(after.choices[0].message.role).toBe('assistant');
  });

  it('a worker process killed mid-request (SIGKILL, as the OOM killer sends): only its request fails (500 naming the signal), it is replaced, the server goes on', async () => {
    const { server, client } = await serve({ workers: 2, isolation: 'process' });
    const killed = client.chat.completions.create(long('killed')).then(
      () => undefined,
      (e: unknown) => e,
    );
    const other = client.chat.completions.create({ ...long('other'), max_tokens: 300 });
    await until(() => runningOn(server, 'killed') !== undefined && runningOn(server, 'other') !== undefined);
    const victim = runningOn(server, 'killed') as Slot;
    expect(victim).not.toBe(runningOn(server, 'other'));
    const pid = victim.worker.pid as number;
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(process.pid);
    process.kill(pid, 'SIGKILL');
    const err = await killed;
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBe(500);
    expect((err as APIError).error).toMatchObject({ type: 'server_error', code: 'worker_exited', message: expect.stringMatching(/^the worker running this request stopped \(killed by SIGKILL\); it is being replaced$/) });
    expect((await other).usage?.completion_tokens).toBe(300);
    await until(async () => (await health(server)).workers === 2);
    expect(await metric(server, 'llava_mini_worker_restarts_total')).toBe(1);
    // A picture reaches a process worker as it reaches a thread (decoded pixels, copied over IPC):
    // two at once, so the replacement answers one of them.
    const house = `data:image/png;base64,${fs.readFileSync(path.join(__dirname, '../../../examples/assets/house.png')).toString('base64')}`;
    const ask = (c: OpenAI) => c.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: house } }, { type: 'text', text: 'What is this?' }] }], max_tokens: 200, ignore_eos: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    const pids = new Set<number | undefined>();
    const both = Promise.all([ask(client), ask(client)]);
    await until(() => {
      for (const w of workers(server)) if (w.jobs.size) pids.add(w.worker.pid);
      return pids.size === 2;
    });
    const threaded = await serve({ workers: 1 });
    const want = (await ask(threaded.client)).choices[0].message.content;
    for (const answer of await both) expect(answer.choices[0].message.content).toBe(want);
  });
});

describe('a model folder that vanishes while loaded', () => {
  it('answers go on from memory; a worker that then dies cannot be replaced: 503 no_workers at once (queued ones too), until the folder is back', async () => {
    const folder = path.join(scratch, 'model');
    fs.cpSync(inject('modelDir'), folder, { recursive: true });
    const { server, client } = await serve({ model: folder });
    const ask = () => client.chat.completions.create({ model: 'model', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3 });
    const before = (await ask()).choices[0].message.content;
    fs.renameSync(folder, `${folder}-gone`);
    expect((await ask()).choices[0].message.content).toBe(before);
    // The worker dies while one request runs and one waits: the running one fails with 500; the
    // replacement cannot load, so the waiting one fails with 503 instead of waiting for ever.
    const running = client.chat.completions.create({ ...long('running'), model: 'model' }).catch((e: APIError) => e);
    await until(() => runningOn(server, 'running') !== undefined);
    const queued = client.chat.completions.create({ ...long('queued'), model: 'model' }).catch((e: APIError) => e);
    await until(async () => (await health(server)).queued === 1);
    crash(runningOn(server, 'running'));
    expect(await running).toMatchObject({ status: 500, code: 'worker_exited' });
    const waited = await queued;
    expect(waited).toMatchObject({ status: 503, code: 'no_workers' });
    // 'restarting' while a retry loads, 'no_workers' between retries.
    expect(await health(server)).toMatchObject({ http: 503, status: expect.stringMatching(/^(no_workers|restarting)$/) });
    expect(await ask().catch((e: APIError) => e)).toMatchObject({ status: 503, code: 'no_workers' });
    // The folder back: a later try loads it, and the server serves again.
    fs.renameSync(`${folder}-gone`, folder);
    await until(async () => (await health(server)).http === 200, 30_000);
    expect((await ask()).choices[0].message.content).toBe(before);
  });
});

/** A real 64 kB tmpfs as the temporary folder, where this machine lets us mount one (root, as CI runs). */
function smallTmpfs(): string | undefined {
  const dir = fs.mkdtempSync(path.join(scratch, 'tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    return undefined;
  }
}
const tmpfs = smallTmpfs();

describe.skipIf(!tmpfs)('a full disk', () => {
  it('an inline video that does not fit the temporary folder: 507 naming the bytes needed, nothing left behind, the next one answered', async () => {
    const { client } = await serve();
    const clip = fs.readFileSync(path.resolve(__dirname, '../../../examples/assets/shapes.mp4'));
    const video = (bytes: Buffer) => [{ role: 'user' as const, content: [{ type: 'video_url', video_url: { url: `data:video/mp4;base64,${bytes.toString('base64')}` } }, { type: 'text', text: 'What moves?' }] }];
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmpfs;
    try {
      const big = Buffer.concat([clip, Buffer.alloc(200_000)]);
      const err = await client.chat.completions.create({ model: 'tiny', messages: video(big) as never, max_tokens: 2 }).catch((e: APIError) => e);
      expect(err).toMatchObject({ status: 507, code: 'insufficient_storage', param: 'messages[0].content[0].video_url.url' });
      expect((err as APIError).message).toContain(`${big.byteLength} bytes needed`);
      expect(fs.readdirSync(tmpfs as string)).toEqual([]);
      const ok = await client.chat.completions.create({ model: 'tiny', messages: video(clip) as never, max_tokens: 2 });
      expect(ok.choices[0].message.role).toBe('assistant');
      // Removed as the request ends (just after its answer is sent).
      await until(() => fs.readdirSync(tmpfs as string).length === 0, 5_000);
    } finally {
      process.env.TMPDIR = saved;
    }
  });
});
