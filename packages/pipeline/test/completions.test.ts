import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { AbortError, ImageError, InvalidOptionError } from '@llava-mini/core';
import { buildLlavaPrompt } from '@llava-mini/prefusion';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChatCompletionChunk, defaultModelDir, ensureTinyModel, LlavaMini, RequestError } from '../src/node.js';

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-completions-'));
const dataUrl = `data:image/png;base64,${fs.readFileSync(IMAGE).toString('base64')}`;
let model: LlavaMini;
// A second picture: the same image flipped, so two images differ.
let flipped: string;

beforeAll(async () => {
  model = await LlavaMini.fromPretrained(await ensureTinyModel(path.join(root, 'model')), { device: 'cpu' });
  const sharp = (await import('sharp')).default;
  flipped = path.join(root, 'flipped.png');
  await sharp(IMAGE).flip().png().toFile(flipped);
});
afterAll(async () => {
  await model?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

const image = (url: string) => ({ type: 'image_url' as const, image_url: { url } });
const text = (t: string) => ({ type: 'text' as const, text: t });

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

describe('model.chat.completions.create (in process)', () => {
  it('a non-streaming answer is ask()\'s answer, with usage counting prompt rows and generated tokens', async () => {
    const r = await model.ask(IMAGE, 'What is in this picture?', { maxNewTokens: 5 }).done();
    const c = await model.chat.completions.create({ messages: [{ role: 'user', content: [image(IMAGE), text('What is in this picture?')] }], max_tokens: 5 });
    expect(c.object).toBe('chat.completion');
    expect(c.choices[0].message).toEqual({ role: 'assistant', content: r.text, refusal: null });
    expect(c.choices[0].finish_reason).toBe(r.finishReason === 'stop' ? 'stop' : 'length');
    expect(c.usage).toEqual({ prompt_tokens: r.llmInputTokens, completion_tokens: r.ids.length - r.headerTokens, total_tokens: r.llmInputTokens + r.ids.length - r.headerTokens });
    expect(c.timings.timeToFirstTokenMs).toBeGreaterThan(0);
  });

  it('streaming gives a role chunk, one chunk per visible token, a finish chunk, then usage with no choices', async () => {
    const tokens: string[] = [];
    const answer = model.ask(IMAGE, 'Describe it.', { maxNewTokens: 6 });
    for await (const t of answer) if (t.text) tokens.push(t.text);
    const r = await answer.done();
    const chunks = await collect(
      await model.chat.completions.create({ messages: [{ role: 'user', content: [text('Describe it.'), image(dataUrl)] }], max_tokens: 6, stream: true, stream_options: { include_usage: true } }),
    );
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const content = chunks.slice(1, -2).map((c) => c.choices[0].delta.content);
    expect(content).toEqual(tokens);
    expect(chunks.at(-2)?.choices[0]).toMatchObject({ delta: {}, finish_reason: r.finishReason === 'stop' ? 'stop' : 'length' });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: r.llmInputTokens, completion_tokens: r.ids.length - r.headerTokens } });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('a file: URL and a data URL read the same picture as its path', async () => {
    const ask = (url: string) => model.chat.completions.create({ messages: [{ role: 'user', content: [image(url), text('What?')] }], max_tokens: 4 });
    const byPath = await ask(IMAGE);
    expect((await ask(pathToFileURL(IMAGE).href)).choices[0].message.content).toBe(byPath.choices[0].message.content);
    expect((await ask(dataUrl)).usage).toEqual(byPath.usage);
  });

  it('several images in a turn are the image list of ask(), in order', async () => {
    const r = await model.ask([IMAGE, flipped], 'Compare them.', { maxNewTokens: 5 }).done();
    const c = await model.chat.completions.create({ messages: [{ role: 'user', content: [image(IMAGE), text('Compare them.'), image(flipped)] }], max_tokens: 5 });
    expect(c.choices[0].message.content).toBe(r.text);
    expect(c.usage.prompt_tokens).toBe(r.llmInputTokens);
  });

  it('system messages become the system prompt; earlier turns the history the template renders', async () => {
    const system = 'You describe houses.';
    const first = await model.ask(IMAGE, 'What is this?', { maxNewTokens: 4, system }).done();
    const history = [{ user: 'What is this?', assistant: first.text }];
    // The prompt a seeded conversation runs is the template's rendering of the whole exchange.
    const seeded = await model.chat(IMAGE, { system, history }).ask('And its colour?', { maxNewTokens: 4 }).done();
    expect(seeded.promptTokenIds).toEqual(buildLlavaPrompt(model.parts.tokenizer, 'And its colour?', { system, history }).ids);
    const c = await model.chat.completions.create({
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: [image(IMAGE), text('What is this?')] },
        { role: 'assistant', content: first.text },
        { role: 'user', content: 'And its colour?' },
      ],
      max_tokens: 4,
    });
    expect(c.choices[0].message.content).toBe(seeded.text);
    expect(c.usage.prompt_tokens).toBe(seeded.llmInputTokens);
  });

  it('text only: replaying a conversation gives the answer the live conversation gave', async () => {
    const conversation = model.chat();
    const a = await conversation.ask('Hello there', { maxNewTokens: 4 }).done();
    const b = await conversation.ask('Go on', { maxNewTokens: 4 }).done();
    const c = await model.chat.completions.create({
      messages: [
        { role: 'user', content: 'Hello there' },
        { role: 'assistant', content: a.text },
        { role: 'user', content: 'Go on' },
      ],
      max_tokens: 4,
    });
    expect(c.choices[0].message.content).toBe(b.text);
  });

  it('stop, temperature, top_p and seed act as in ask(): the same seed gives the same sample', async () => {
    const messages = [{ role: 'user' as const, content: [image(IMAGE), text('Tell me.')] }];
    const sampled = await model.ask(IMAGE, 'Tell me.', { maxNewTokens: 8, temperature: 1.5, topP: 0.9, seed: 11 }).done();
    const c = await model.chat.completions.create({ messages, max_tokens: 8, temperature: 1.5, top_p: 0.9, seed: 11 });
    expect(c.choices[0].message.content).toBe(sampled.text);
    const greedy = await model.chat.completions.create({ messages, max_tokens: 8 });
    const full = greedy.choices[0].message.content;
    const stop = full.trim().slice(2, 4);
    if (stop.length === 2) {
      const cut = await model.chat.completions.create({ messages, max_tokens: 8, stop: [stop] });
      expect(cut.choices[0].finish_reason).toBe('stop');
      expect(full.startsWith(cut.choices[0].message.content)).toBe(true);
      expect(cut.choices[0].message.content).not.toContain(stop);
    }
    expect(greedy.choices[0].finish_reason).toBe(greedy.usage.completion_tokens === 8 ? 'length' : 'stop');
  });

  it('ignore_eos runs past the end-of-turn token to max_tokens, the greedy answer as its prefix', async () => {
    const messages = [{ role: 'user' as const, content: 'Hi' }];
    const ended = await model.chat.completions.create({ messages, max_tokens: 2000 });
    expect(ended.choices[0].finish_reason).toBe('stop');
    const n = ended.usage.completion_tokens + 20;
    const long = await model.chat.completions.create({ messages, max_tokens: n, ignore_eos: true });
    expect(long.usage.completion_tokens).toBe(n);
    expect(long.choices[0].finish_reason).toBe('length');
    expect(long.choices[0].message.content.startsWith(ended.choices[0].message.content)).toBe(true);
  });

  it('an aborted signal stops the request with AbortError; the model serves the next one', async () => {
    const controller = new AbortController();
    const stream = await model.chat.completions.create({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 50, stream: true }, { signal: controller.signal });
    const seen: ChatCompletionChunk[] = [];
    await expect(
      (async () => {
        for await (const c of stream) {
          seen.push(c);
          if (seen.length === 2) controller.abort();
        }
      })(),
    ).rejects.toBeInstanceOf(AbortError);
    expect(seen.length).toBe(2);
    const next = await model.chat.completions.create({ messages: [{ role: 'user', content: 'Hello' }], max_tokens: 2 });
    expect(next.usage.completion_tokens).toBeGreaterThan(0);
  });

  it("logprobs and top_logprobs: ask()'s token log-probabilities in OpenAI's shape, streamed and not", async () => {
    const messages = [{ role: 'user' as const, content: [image(IMAGE), text('What is in this picture?')] }];
    const tokens = [];
    for await (const t of model.ask(IMAGE, 'What is in this picture?', { maxNewTokens: 6, logprobs: true, topLogprobs: 3 })) if (!t.header) tokens.push(t.logprobs!);
    const expected = tokens.map((t) => ({
      token: t.token,
      logprob: t.logprob,
      bytes: t.bytes,
      top_logprobs: t.top.map((x) => ({ token: x.token, logprob: x.logprob, bytes: x.bytes })),
    }));
    expect(expected.every((e) => e.top_logprobs.length === 3 && e.logprob <= 0)).toBe(true);

    const whole = await model.chat.completions.create({ messages, max_tokens: 6, logprobs: true, top_logprobs: 3 });
    expect(whole.choices[0].logprobs).toEqual({ content: expected, refusal: null });
    expect(whole.choices[0].logprobs?.content).toHaveLength(whole.usage.completion_tokens);

    const chunks = await collect(await model.chat.completions.create({ messages, max_tokens: 6, logprobs: true, top_logprobs: 3, stream: true }));
    expect(chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? [])).toEqual(expected);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(whole.choices[0].message.content);
    // Without the option: none, as before.
    expect((await model.chat.completions.create({ messages, max_tokens: 2 })).choices[0].logprobs).toBeNull();
  });

  it('n answers from one prompt: equal when greedy, reproducible and different with a seed; usage counts them all', async () => {
    const messages = [{ role: 'user' as const, content: [image(IMAGE), text('What is in this picture?')] }];
    const one = await model.chat.completions.create({ messages, max_tokens: 6 });
    const greedy = await model.chat.completions.create({ messages, max_tokens: 6, n: 3 });
    expect(greedy.choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([0, 1, 2].map((i) => [i, one.choices[0].message.content, one.choices[0].finish_reason]));
    expect(greedy.usage).toEqual({ ...one.usage, completion_tokens: 3 * one.usage.completion_tokens, total_tokens: one.usage.prompt_tokens + 3 * one.usage.completion_tokens });

    const sampled = { messages, max_tokens: 8, n: 3, temperature: 1.5, seed: 5, logprobs: true } as const;
    const a = await model.chat.completions.create(sampled);
    expect((await model.chat.completions.create(sampled)).choices).toEqual(a.choices);
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    // Choice i is the answer seed + i gives alone.
    const alone = await model.chat.completions.create({ ...sampled, n: 1, seed: 6 });
    expect(a.choices[1].message.content).toBe(alone.choices[0].message.content);
    expect(a.choices[1].logprobs).toEqual(alone.choices[0].logprobs);

    // Streamed: each choice's chunks, interleaved, give its text; one finish chunk each.
    const chunks = await collect(await model.chat.completions.create({ ...sampled, stream: true, stream_options: { include_usage: true } }));
    for (const c of a.choices) {
      const mine = chunks.filter((k) => k.choices[0]?.index === c.index);
      // (A partial character at the very end is in the whole answer only, as for n = 1.)
      const streamed = mine.map((k) => k.choices[0].delta.content ?? '').join('').trim();
      expect(streamed.length).toBeGreaterThan(0);
      expect(c.message.content.startsWith(streamed)).toBe(true);
      expect(mine.flatMap((k) => k.choices[0].logprobs?.content ?? [])).toEqual(c.logprobs?.content);
      expect(mine.filter((k) => k.choices[0].finish_reason).map((k) => k.choices[0].finish_reason)).toEqual([c.finish_reason]);
    }
    expect(chunks.at(-1)?.usage).toEqual(a.usage);

    // In ask(): the result is the first answer, `choices` has them all.
    const r = await model.ask(IMAGE, 'What is in this picture?', { maxNewTokens: 8, n: 2, temperature: 1.5, seed: 5 }).done();
    expect(r.choices?.map((c) => c.text)).toEqual([r.text, a.choices[1].message.content]);
  });

  it('response_format json_schema and json_object: the answer parses as the schema says, streamed or not; a schema the engine refuses is a RequestError', async () => {
    const messages = [{ role: 'user' as const, content: [image(IMAGE), text('What is in this picture?')] }];
    const schema = { type: 'object', properties: { kind: { enum: ['house', 'tree'] }, floors: { type: 'integer', minimum: 1, maximum: 3 } }, required: ['kind', 'floors'], additionalProperties: false };
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'scene', schema, strict: true } };
    const r = await model.chat.completions.create({ messages, max_tokens: 40, response_format });
    expect(r.choices[0].finish_reason).toBe('stop');
    const value = JSON.parse(r.choices[0].message.content);
    expect(Object.keys(value)).toEqual(['kind', 'floors']);
    expect(['house', 'tree']).toContain(value.kind);
    expect([1, 2, 3]).toContain(value.floors);
    const chunks = await collect(await model.chat.completions.create({ messages, max_tokens: 40, response_format, stream: true }));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(r.choices[0].message.content);
    const object = await model.chat.completions.create({ messages, max_tokens: 40, response_format: { type: 'json_object' } });
    expect(object.choices[0].message.content.startsWith('{')).toBe(true);

    const refused = await model.chat.completions.create({ messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'bogus' } } } }).catch((e) => e);
    expect(refused).toBeInstanceOf(RequestError);
    expect(refused).toMatchObject({ param: 'response_format.json_schema.schema', message: expect.stringMatching(/bogus/) });
  });

  it('bad requests are RequestErrors naming the field, before any model work', async () => {
    const bad: [unknown, string | null][] = [
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }, 'temperature'],
      [{ messages: [{ role: 'user', content: 'x' }], frobnicate: 1 }, 'frobnicate'],
      [{ messages: [{ role: 'user', content: 'x' }], tools: [] }, 'tools'],
      [{ messages: [{ role: 'user', content: 'x' }], n: 9 }, 'n'],
      [{ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'xml' } }, 'response_format.type'],
      [{ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
      [{ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { schema: {} } } }, 'response_format.json_schema.name'],
      [{ messages: [{ role: 'user', content: 'x' }], n: 0 }, 'n'],
      [{ messages: [{ role: 'user', content: 'x' }], stream_options: { include_usage: true } }, 'stream_options'],
      [{ messages: [{ role: 'user', content: [{ type: 'audio', audio: {} }] }] }, 'messages[0].content[0].type'],
      [{ messages: [{ role: 'system', content: [image(IMAGE)] }, { role: 'user', content: 'x' }] }, 'messages[0].content[0]'],
      [{ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] }, 'messages'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: [{ type: 'video_url', video_url: { url: 'a.mp4' } }, image(IMAGE)] }] }, 'messages[0].content[0].video_url.url'],
      [{ messages: [{ role: 'user', content: 'x' }], stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ messages: [{ role: 'user', content: 'x' }], ignore_eos: 'yes' }, 'ignore_eos'],
      [{ messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
      [{ messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, 'top_logprobs'],
    ];
    for (const [body, param] of bad) {
      const err = await model.chat.completions.create(body as never).catch((e) => e);
      expect(err, JSON.stringify(body)).toBeInstanceOf(RequestError);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as RequestError).param, JSON.stringify(body)).toBe(param);
    }
    const undecodable = await model.chat.completions.create({ messages: [{ role: 'user', content: [image('data:image/png;base64,AAAA')] }] }).catch((e) => e);
    expect(undecodable).toBeInstanceOf(ImageError);
  });
});

describe('the token budget, with the trained demo model (it writes the assistant header before its answer)', () => {
  const SHAPES = path.resolve(__dirname, '../../../examples/assets/shapes.png');
  const messages = [{ role: 'user' as const, content: [image(SHAPES), text('What color is the circle?')] }];

  it('max_tokens and usage.completion_tokens count the answer alone, streamed or not', async () => {
    const demo = await LlavaMini.fromPretrained(defaultModelDir(), { device: 'cpu' });
    try {
      const one = await demo.chat.completions.create({ messages, max_tokens: 1 });
      expect(one.choices[0]).toMatchObject({ message: { content: 'red' }, finish_reason: 'length' });
      expect(one.usage.completion_tokens).toBe(1);
      const chunks = await collect(await demo.chat.completions.create({ messages, max_tokens: 1, stream: true, stream_options: { include_usage: true } }));
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('red');
      expect(chunks.at(-1)?.usage?.completion_tokens).toBe(1);
      // The header is in ask()'s ids (the KV cache holds it) and counted apart.
      const r = await demo.ask(SHAPES, 'What color is the circle?', { maxNewTokens: 1 }).done();
      expect(r.headerTokens).toBeGreaterThan(0);
      expect(r.ids.length - r.headerTokens).toBe(1);
      // logprobs describe the answer's tokens only: one here, the confident 'red'.
      const lp = (await demo.chat.completions.create({ messages, max_tokens: 1, logprobs: true, top_logprobs: 2 })).choices[0].logprobs?.content;
      expect(lp?.map((t) => t.token.trim())).toEqual(['red']);
      expect(lp?.[0].top_logprobs[0].token).toBe(lp?.[0].token);
      expect(Math.exp(lp?.[0].logprob ?? -Infinity)).toBeGreaterThan(0.5);
    } finally {
      await demo.dispose();
    }
  });
});
