import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, InvalidOptionError } from '@llava-mini/core';
import { makeDirs, writeFileAtomic } from '@llava-mini/core/node';
import { LLAMA3_SPLIT_REGEX, trainByteLevelBpe, type BpeModel } from './bpe.js';
import type { SpecialIds } from './config.js';
import { TINY_CORPUS } from './corpus.js';
import { pyJson } from './json.js';

/** Regular (BPE) tokens of the tiny tokenizer: the 256 bytes plus 256 learned merges. */
export const TINY_REGULAR_VOCAB = 512;

/** Llama-3.1's first special tokens in its order, padded with reserved ones to 16 (ids base+0..15). */
export const SPECIAL_TOKENS: readonly string[] = [
  '<|begin_of_text|>',
  '<|end_of_text|>',
  '<|reserved_special_token_0|>',
  '<|reserved_special_token_1|>',
  '<|finetune_right_pad_id|>',
  '<|reserved_special_token_2|>',
  '<|start_header_id|>',
  '<|end_header_id|>',
  '<|eom_id|>',
  '<|eot_id|>',
  '<|python_tag|>',
  ...[3, 4, 5, 6, 7].map((i) => `<|reserved_special_token_${i}|>`),
];

const BOS = '<|begin_of_text|>';
const EOT = '<|eot_id|>';
const PAD = '<|finetune_right_pad_id|>';
/** Llama-3.1's stop list order in generation_config.json. */
const EOS_NAMES = ['<|end_of_text|>', '<|eom_id|>', '<|eot_id|>'];

/**
 * The Llama-3.0 Instruct chat template, character for character. The spec infers (§4.2) that the
 * release ships this one rather than 3.1's, whose system preamble adds a knowledge-cutoff date.
 */
export const LLAMA3_CHAT_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

let trained: BpeModel | undefined;

/** The tiny BPE model; trained once per process (it is a pure function of the built-in corpus). */
export function tinyBpe(): BpeModel {
  trained ??= trainByteLevelBpe(TINY_CORPUS, TINY_REGULAR_VOCAB);
  return trained;
}

function addedToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/**
 * A byte-level BPE of your own: `corpus` (plain text, no special tokens) is what the merges are
 * learned from, `regularVocab` the number of regular tokens (256 bytes + merges).
 */
export interface BpeSpec {
  corpus: string;
  regularVocab: number;
}

/** tokenizer.json in the structure of Llama-3.1's (same pre-tokenizer, post-processor, decoder, model flags). */
export function tinyTokenizerJson(spec?: BpeSpec): { json: Record<string, unknown>; ids: SpecialIds } {
  const bpe = spec ? trainByteLevelBpe(spec.corpus, spec.regularVocab) : tinyBpe();
  const base = bpe.vocab.size;
  const specialId = (t: string) => base + SPECIAL_TOKENS.indexOf(t);
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t, i) => addedToken(base + i, t)),
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: BOS, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: BOS, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: BOS, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [BOS]: { id: BOS, ids: [specialId(BOS)], tokens: [BOS] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab: Object.fromEntries(bpe.vocab),
      merges: bpe.merges,
    },
  };
  return { json, ids: { bos: specialId(BOS), eos: EOS_NAMES.map(specialId), vocabSize: base + SPECIAL_TOKENS.length } };
}

const VOCAB_SLOT = '\u0000vocab\u0000';

/**
 * tokenizer.json text laid out like the Rust library's pretty printer: two-space indent, keys in
 * struct order, vocab in id order. The vocab is spliced in by hand because a JavaScript object would
 * list integer-like tokens ("0", "10", ...) first whatever their id.
 */
export function tokenizerJsonText(json: Record<string, unknown>): string {
  const model = json.model as { vocab: Record<string, number> };
  const entries = Object.entries(model.vocab).sort(([, a], [, b]) => a - b);
  const text = JSON.stringify({ ...json, model: { ...model, vocab: VOCAB_SLOT } }, null, 2);
  const vocab = `{\n${entries.map(([t, id]) => `      ${JSON.stringify(t)}: ${id}`).join(',\n')}\n    }`;
  return text.replace(JSON.stringify(VOCAB_SLOT), () => vocab);
}

function specialEntry(content: string) {
  return { content, lstrip: false, normalized: false, rstrip: false, single_word: false };
}

/** tokenizer_config.json as transformers 4.43 saves a Llama-3 fast tokenizer with a pad token set. */
export function tinyTokenizerConfig(ids: SpecialIds): Record<string, unknown> {
  const base = ids.vocabSize - SPECIAL_TOKENS.length;
  return {
    added_tokens_decoder: Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [String(base + i), { ...specialEntry(t), special: true }])),
    bos_token: BOS,
    chat_template: LLAMA3_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: true,
    eos_token: EOT,
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: 131072,
    // The release's special_tokens_map.json is 454 bytes, exactly bos + eos + this pad token (spec §4.2: training sets pad 128004).
    pad_token: PAD,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
}

/**
 * Write tokenizer.json, tokenizer_config.json and special_tokens_map.json of the tiny tokenizer (or
 * of a BPE learned from `spec`, with the same special tokens and chat template).
 */
export function writeTinyTokenizer(dir: string, spec?: BpeSpec): SpecialIds {
  const { json, ids } = tinyTokenizerJson(spec);
  writeFileAtomic(path.join(dir, 'tokenizer.json'), tokenizerJsonText(json));
  writeFileAtomic(path.join(dir, 'tokenizer_config.json'), pyJson(tinyTokenizerConfig(ids), { ensureAscii: false }));
  const map = { bos_token: specialEntry(BOS), eos_token: specialEntry(EOT), pad_token: specialEntry(PAD) };
  writeFileAtomic(path.join(dir, 'special_tokens_map.json'), pyJson(map));
  return ids;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidOptionError(`tokenizer.dir: cannot read ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

/** A special token's text from a tokenizer_config.json entry, which is a string or an AddedToken dict. */
function tokenText(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry && typeof entry === 'object' && typeof (entry as { content?: unknown }).content === 'string') return (entry as { content: string }).content;
  return undefined;
}

/**
 * Copy a real tokenizer (tokenizer.json, tokenizer_config.json and, if present,
 * special_tokens_map.json) unchanged, and read the ids the model config needs from it: BOS, the
 * Llama-3.1 stop tokens it has, and vocab_size = largest id + 1.
 */
export function copyTokenizer(srcDir: string, dir: string): SpecialIds {
  const tokJson = readJson(path.join(srcDir, 'tokenizer.json'));
  const tokConfig = readJson(path.join(srcDir, 'tokenizer_config.json'));

  const ids = new Map<string, number>();
  const model = tokJson.model as { vocab?: unknown } | undefined;
  let maxId = -1;
  if (Array.isArray(model?.vocab)) {
    // Unigram stores [piece, score] pairs whose index is the id.
    (model.vocab as [string, number][]).forEach(([piece], i) => ids.set(piece, i));
    maxId = model.vocab.length - 1;
  } else if (model?.vocab && typeof model.vocab === 'object') {
    for (const [piece, id] of Object.entries(model.vocab as Record<string, number>)) {
      ids.set(piece, id);
      maxId = Math.max(maxId, id);
    }
  }
  for (const t of (tokJson.added_tokens as { id: number; content: string }[] | undefined) ?? []) {
    ids.set(t.content, t.id);
    maxId = Math.max(maxId, t.id);
  }
  if (maxId < 0) throw new InvalidOptionError(`tokenizer.dir: ${srcDir}/tokenizer.json has an empty vocabulary`);

  const bosText = tokenText(tokConfig.bos_token) ?? BOS;
  const bos = ids.get(bosText);
  if (bos === undefined) throw new InvalidOptionError(`tokenizer.dir: the BOS token '${bosText}' is not in ${srcDir}/tokenizer.json`);
  let eos = EOS_NAMES.map((t) => ids.get(t)).filter((id): id is number => id !== undefined);
  if (eos.length === 0) {
    const eosText = tokenText(tokConfig.eos_token);
    const id = eosText === undefined ? undefined : ids.get(eosText);
    if (id === undefined) throw new InvalidOptionError(`tokenizer.dir: ${srcDir} has no end-of-text, eom or eot token and no usable eos_token`);
    eos = [id];
  }

  makeDirs(dir);
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    const src = path.join(srcDir, file);
    if (fs.existsSync(src)) writeFileAtomic(path.join(dir, file), fs.readFileSync(src));
  }
  return { bos, eos, vocabSize: maxId + 1 };
}
