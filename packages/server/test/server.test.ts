// The server through the official `openai` client, against a real server on loopback.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LlavaMini } from '@llava-mini/pipeline/node';
import OpenAI, { APIError, APIUserAbortError, AuthenticationError, BadRequestError, InternalServerError, NotFoundError, RateLimitError } from 'openai';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ServerHandle, startServer } from '../src/index.js';

const ASSETS = path.resolve(__dirname, '../../../examples/assets');
const IMAGE = path.join(ASSETS, 'house.png');
const dataUrl = (bytes: Buffer, type = 'image/png') => `data:${type};base64,${bytes.toString('base64')}`;
const HOUSE = dataUrl(fs.readFileSync(IMAGE));
const KEY = 'test-key';

let server: ServerHandle;
let client: OpenAI;
let model: LlavaMini;

beforeAll(async () => {
  server = await startServer({
    model: inject('modelDir'),
    modelId: 'tiny',
    port: 0,
    queue: 1,
    apiKey: KEY,
    bodyLimit: 1 << 20,
    maxImagePixels: 480 * 360,
    allowedMediaPaths: [ASSETS],
    remoteMediaHosts: ['localhost', '127.0.0.1'],
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  model = await LlavaMini.fromPretrained(inject('modelDir'), { device: 'cpu' });
  await server.ready;
});
afterAll(async () => {
  await server?.close();
  await model?.dispose();
});

type Messages = OpenAI.Chat.Completions.ChatCompletionMessageParam[];
const withImage = (url: string, question = 'What is in this picture?'): Messages => [
  { role: 'system', content: 'You look at houses.' },
  { role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: question }] },
];

/** The status, code and param a request failed with, through the client's own error classes. */
async function failure(run: () => Promise<unknown>, cls: new (...a: never[]) => APIError) {
  const err = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(cls);
  const e = err as APIError;
  expect(e.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
  return { status: e.status, code: e.code, param: e.param, message: e.message };
}

async function health() {
  const res = await fetch(`${server.url}/health`);
  return { status: res.status, body: (await res.json()) as { status: string; running: number; queued: number } };
}

async function until(check: () => Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('llava-mini serve through the openai client', () => {
  it('non-streaming: the in-process answer, with its usage', async () => {
    const local = await model.chat.completions.create({ messages: withImage(IMAGE) as never, max_tokens: 6 });
    const r = await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), max_tokens: 6 });
    expect(r.choices[0].message.content).toBe(local.choices[0].message.content);
    expect(r.choices[0].finish_reason).toBe(local.choices[0].finish_reason);
    expect(r.usage).toEqual(local.usage);
    expect(r.model).toBe('tiny');
    // A path under --allowed-media-path reads the same picture.
    const byPath = await client.chat.completions.create({ model: 'tiny', messages: withImage(IMAGE), max_tokens: 6 });
    expect(byPath.choices[0].message.content).toBe(local.choices[0].message.content);
  });

  it('streaming: the in-process chunks, then usage in a last chunk with no choices', async () => {
    const local: string[] = [];
    for await (const c of await model.chat.completions.create({ messages: withImage(IMAGE, 'Describe it.') as never, max_tokens: 8, stream: true })) local.push(c.choices[0]?.delta.content ?? '');
    const stream = await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE, 'Describe it.'), max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.slice(0, -1).map((c) => c.choices[0]?.delta.content ?? '')).toEqual(local);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    const content = local.join('');
    const tokens = last?.usage?.completion_tokens ?? 0;
    expect(tokens).toBeGreaterThan(0);
    expect(last?.usage?.total_tokens).toBe((last?.usage?.prompt_tokens ?? 0) + tokens);
    expect(content.trim()).toBe((await model.chat.completions.create({ messages: withImage(IMAGE, 'Describe it.') as never, max_tokens: 8 })).choices[0].message.content);
    // Without include_usage there is no usage chunk, and no usage field.
    const plain = [];
    for await (const c of await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, stream: true })) plain.push(c);
    expect(plain.every((c) => c.choices.length === 1 && !('usage' in c && c.usage))).toBe(true);
  });

  it('logprobs and top_logprobs, streamed and not: the in-process ones, in the shape the client types', async () => {
    const params = { max_tokens: 5, logprobs: true, top_logprobs: 4 } as const;
    const local = await model.chat.completions.create({ messages: withImage(IMAGE) as never, ...params });
    const expected = local.choices[0].logprobs?.content;
    expect(expected?.length).toBe(local.usage.completion_tokens);
    const r = await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), ...params });
    expect(r.choices[0].logprobs?.content).toEqual(expected);
    const top: OpenAI.Chat.Completions.ChatCompletionTokenLogprob.TopLogprob[] = r.choices[0].logprobs?.content?.[0].top_logprobs ?? [];
    expect(top).toHaveLength(4);
    const streamed = [];
    for await (const c of await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), ...params, stream: true })) streamed.push(...(c.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(expected);
    const bad = () => client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), logprobs: true, top_logprobs: 21 });
    expect(await failure(bad, BadRequestError)).toMatchObject({ status: 400, param: 'top_logprobs' });
  });

  it('n: 3 answers from one prompt, streamed and not: the in-process ones', async () => {
    const params = { max_tokens: 6, n: 3, temperature: 1.2, seed: 9 } as const;
    const local = await model.chat.completions.create({ messages: withImage(IMAGE) as never, ...params });
    const r = await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), ...params });
    expect(r.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual(local.choices.map((c) => [c.index, c.message.content, c.finish_reason]));
    expect(r.usage).toEqual(local.usage);
    const finished = new Map<number, string>();
    for await (const c of await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), ...params, stream: true })) {
      for (const choice of c.choices) if (choice.finish_reason) finished.set(choice.index, choice.finish_reason);
    }
    expect([...finished.entries()].sort()).toEqual(r.choices.map((c) => [c.index, c.finish_reason]));
    expect(await failure(() => client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), n: 9 }), BadRequestError)).toMatchObject({ status: 400, param: 'n' });
  });

  it('response_format json_schema, streamed and not: JSON the schema allows, the in-process answer; a schema the engine refuses is a 400', async () => {
    const schema = { type: 'object', properties: { kind: { enum: ['house', 'tree'] }, floors: { type: 'integer', minimum: 1, maximum: 3 } }, required: ['kind', 'floors'], additionalProperties: false };
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'scene', schema, strict: true } };
    const local = await model.chat.completions.create({ messages: withImage(IMAGE) as never, max_tokens: 40, response_format });
    const r = await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), max_tokens: 40, response_format });
    expect(r.choices[0].message.content).toBe(local.choices[0].message.content);
    const value = JSON.parse(r.choices[0].message.content ?? '');
    expect(['house', 'tree']).toContain(value.kind);
    let streamed = '';
    for await (const c of await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), max_tokens: 40, response_format, stream: true })) streamed += c.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(r.choices[0].message.content);
    const refused = () => client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'bogus' } } } });
    expect(await failure(refused, BadRequestError)).toMatchObject({ status: 400, param: 'response_format.json_schema.schema' });
  });

  it('a video (vLLM video_url) by path or inline as a data URL: the in-process answer', async () => {
    const video = path.join(ASSETS, 'clip.mp4');
    const local = await model.ask({ video }, 'What happens?', { maxNewTokens: 4 }).done();
    const ask = (url: string) => client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'video_url', video_url: { url } } as never, { type: 'text', text: 'What happens?' }] }], max_tokens: 4 });
    for (const url of [video, dataUrl(fs.readFileSync(video), 'video/mp4')]) {
      const r = await ask(url);
      expect(r.choices[0].message.content).toBe(local.text);
      expect(r.usage?.prompt_tokens).toBe(local.llmInputTokens);
    }
  });

  it('lists the model with its input modalities; an unknown model is 404', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['tiny']);
    expect((list.data[0] as unknown as { input_modalities: string[] }).input_modalities).toEqual(['text', 'image', 'video']);
    expect(await failure(() => client.models.retrieve('gpt-4o'), NotFoundError)).toMatchObject({ status: 404, code: 'model_not_found' });
    expect(await failure(() => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), NotFoundError)).toMatchObject({ status: 404, param: 'model' });
  });

  it('401 without the API key or with a wrong one; /health needs none', async () => {
    for (const apiKey of ['wrong', '']) {
      const other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: apiKey || 'x', maxRetries: 0, defaultHeaders: apiKey ? {} : { authorization: null } });
      expect(await failure(() => other.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] }), AuthenticationError)).toMatchObject({ status: 401, code: 'invalid_api_key' });
    }
    expect((await health()).status).toBe(200);
  });

  it('bad requests get 400/413 with the field named, and the server keeps serving', async () => {
    const big = await sharp({ create: { width: 600, height: 400, channels: 3, background: '#884422' } }).png().toBuffer();
    const cases: [unknown, number, string | null, string | null][] = [
      [{ messages: 'hello' }, 400, 'messages', 'invalid_value'],
      [{ messages: [{ role: 'user', content: 'x' }], max_tokens: 'ten' }, 400, 'max_tokens', 'invalid_value'],
      [{ messages: [{ role: 'user', content: 'x' }], temperature: 9 }, 400, 'temperature', 'invalid_value'],
      [{ messages: [{ role: 'user', content: 'x' }], unknown_field: true }, 400, 'unknown_field', 'invalid_value'],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0].role', 'invalid_value'],
      [{ messages: withImage('data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA') }, 400, 'messages[1].content[0].image_url.url', 'invalid_image'],
      [{ messages: withImage('data:image/png;base64,!!!notbase64') }, 400, 'messages[1].content[0].image_url.url', 'invalid_image'],
      [{ messages: withImage(dataUrl(big)) }, 400, 'messages[1].content[0].image_url.url', 'image_too_large'],
      [{ messages: withImage('/etc/hostname') }, 400, 'messages[1].content[0].image_url.url', 'media_path_not_allowed'],
      [{ messages: withImage(`${ASSETS}/../../package.json`) }, 400, 'messages[1].content[0].image_url.url', 'media_path_not_allowed'],
      [{ messages: withImage('https://example.com/cat.png') }, 400, 'messages[1].content[0].image_url.url', 'remote_media_refused'],
      // Remote media is on for localhost: its address is loopback, refused after resolution.
      [{ messages: withImage('https://localhost/cat.png') }, 400, 'messages[1].content[0].image_url.url', 'remote_media_refused'],
      [{ messages: withImage('https://127.0.0.1/cat.png') }, 400, 'messages[1].content[0].image_url.url', 'remote_media_refused'],
      [{ messages: [{ role: 'user', content: 'x'.repeat(1 << 20) }] }, 413, null, 'request_too_large'],
    ];
    for (const [body, status, param, code] of cases) {
      const run = () => client.chat.completions.create({ model: 'tiny', ...(body as object) } as never);
      const got = await failure(run, status === 400 ? BadRequestError : APIError);
      expect({ status: got.status, param: got.param, code: got.code }, JSON.stringify(body).slice(0, 120)).toEqual({ status, param, code });
    }
    // 9 images within the body limit: the image cap.
    const tiny = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
    const nine = [{ role: 'user' as const, content: Array.from({ length: 9 }, () => ({ type: 'image_url' as const, image_url: { url: dataUrl(tiny) } })) }];
    expect(await failure(() => client.chat.completions.create({ model: 'tiny', messages: nine }), BadRequestError)).toMatchObject({ code: 'too_many_images' });
    // What the client cannot send: malformed JSON, the wrong content type.
    const raw = (body: string, type = 'application/json') => fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': type }, body });
    for (const [res, status] of [[await raw('{"messages": [}'), 400], [await raw('<a/>', 'application/xml'), 415]] as const) {
      expect(res.status).toBe(status);
      expect((await res.json()).error).toMatchObject({ message: expect.any(String), type: 'invalid_request_error' });
    }
    const ok = await client.chat.completions.create({ model: 'tiny', messages: withImage(HOUSE), max_tokens: 2 });
    expect(ok.choices[0].message.role).toBe('assistant');
  });

  it('a full queue answers 429 with Retry-After; the accepted requests complete', async () => {
    // One worker and a queue of one: of three requests at once, the third is refused. ignore_eos keeps
    // each answer at 4,000 tokens (seconds), so the worker is still busy however fast the machine is.
    const long = () =>
      client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 4000, ignore_eos: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    const first = long();
    await until(async () => (await health()).body.running === 1);
    const second = long();
    await until(async () => (await health()).body.queued === 1);
    const third = await failure(long, RateLimitError);
    expect(third).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
    const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }) });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    for (const r of await Promise.all([first, second])) expect(r.usage?.completion_tokens).toBe(4000);
  });

  it('a client that goes away frees its slot: running or queued', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Go' }], max_tokens: 4000, ignore_eos: true, stream: true } as OpenAI.Chat.ChatCompletionCreateParamsStreaming, { signal: controller.signal });
    const queuedController = new AbortController();
    const queued = client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Wait' }], max_tokens: 400, ignore_eos: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming, { signal: queuedController.signal });
    await until(async () => (await health()).body.queued === 1);
    queuedController.abort();
    await expect(queued).rejects.toBeInstanceOf(APIUserAbortError);
    await until(async () => (await health()).body.queued === 0);
    let seen = 0;
    try {
      for await (const _ of stream) {
        if (++seen < 3) continue;
        controller.abort();
        break;
      }
    } catch (err) {
      expect(err).toBeInstanceOf(APIUserAbortError);
    }
    // The worker stops between two tokens and says so (an abort, not the end of the answer).
    await until(async () => (await health()).body.running === 0);
    const metrics = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    expect(metrics).toMatch(/llava_mini_requests_total\{status="499",stream="true"\} 1/);
    expect(metrics).toMatch(/llava_mini_requests_total\{status="499",stream="false"\} 1/);
    expect(metrics).toMatch(/llava_mini_generations_cancelled_total 1/);
    const next = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Again' }], max_tokens: 2 });
    expect(next.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('/metrics is Prometheus text: requests, queue depth, tokens, time to first token', async () => {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const name of ['llava_mini_requests_total', 'llava_mini_queue_depth', 'llava_mini_generated_tokens_total', 'llava_mini_time_to_first_token_seconds_bucket', 'llava_mini_decode_tokens_per_second_count', 'llava_mini_process_resident_memory_bytes']) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/llava_mini_requests_total\{status="429",stream="false"\} [1-9]/);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
  });
});

describe('a worker running several requests at once (--parallel)', () => {
  it('takes two at once; each answer is the one it gives alone (their decode steps batched)', async () => {
    const s = await startServer({ model: inject('modelDir'), port: 0, parallel: 2, queue: 0 });
    try {
      await s.ready;
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
      const ask = (content: string, max_tokens: number) =>
        c.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content }], max_tokens, ignore_eos: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
      const alone = [await ask('First question', 2000), await ask('Second one', 1500)];
      const together = [ask('First question', 2000), ask('Second one', 1500)];
      await until(async () => s.pool.running === 2);
      // With both running and no queue, a third is refused.
      expect(await failure(() => ask('Third', 2), RateLimitError)).toMatchObject({ status: 429 });
      const both = await Promise.all(together);
      both.forEach((r, i) => {
        expect(r.choices[0].message.content).toBe(alone[i].choices[0].message.content);
        expect(r.usage).toEqual(alone[i].usage);
      });
    } finally {
      await s.close();
    }
  });
});

describe('a server with the defaults', () => {
  it('503 while loading, 200 once ready; remote media and local paths off; 503 while draining, running requests finish', async () => {
    const s = await startServer({ model: inject('modelDir'), port: 0 });
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
    try {
      expect(s.options.host).toBe('127.0.0.1');
      const loading = await fetch(`${s.url}/health`);
      expect(loading.status).toBe(503);
      expect(await failure(() => c.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] }), InternalServerError)).toMatchObject({ status: 503, code: 'model_loading' });
      await s.ready;
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      expect(await failure(() => c.chat.completions.create({ model: 'tiny', messages: withImage('https://example.com/a.png') }), BadRequestError)).toMatchObject({ code: 'remote_media_disabled' });
      expect(await failure(() => c.chat.completions.create({ model: 'tiny', messages: withImage(IMAGE) }), BadRequestError)).toMatchObject({ code: 'local_media_disabled' });
      // CORS is off: no allow-origin header for a browser origin.
      const cors = await fetch(`${s.url}/v1/models`, { headers: { origin: 'https://site.example' } });
      expect(cors.headers.get('access-control-allow-origin')).toBeNull();

      const running = c.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'A long answer' }], max_tokens: 2000, ignore_eos: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
      await until(async () => s.pool.running === 1);
      const drained = s.drain();
      expect((await fetch(`${s.url}/health`)).status).toBe(503);
      expect(await failure(() => c.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }] }), InternalServerError)).toMatchObject({ status: 503, code: 'server_shutting_down' });
      expect((await running).usage?.completion_tokens).toBe(2000);
      await drained;
      expect(s.pool.state).toBe('closed');
    } finally {
      await s.close();
    }
  });
});
