import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { errorMessage, InvalidOptionError, ModelFilesError, UnsupportedConfigError } from '@llava-mini/core';
import { byteLevelBytes } from './token-bytes.js';

/** One chat message as chat templates see it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

type Json = Record<string, unknown>;

function parseJson(what: string, value: string | Json): Json {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as Json;
  } catch (err) {
    throw new ModelFilesError(what, `is not valid JSON: ${errorMessage(err)}`, { cause: err });
  }
}

/** A special token in tokenizer_config.json is a string or an AddedToken object. */
function tokenText(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (entry && typeof entry === 'object' && typeof (entry as { content?: unknown }).content === 'string') return (entry as { content: string }).content;
  return undefined;
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates (use 'default'). */
function chatTemplateOf(config: Json): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    // Entries that are not { name, template } objects (a hand-edited or hostile file) are skipped.
    const named = t.filter((x): x is { name?: unknown; template: string } => x !== null && typeof x === 'object' && typeof (x as { template?: unknown }).template === 'string');
    return (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}

function idList(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => Number.isInteger(x));
  return [];
}

export interface TokenizerFiles {
  /** tokenizer.json (parsed or text). */
  tokenizer: string | Json;
  /** tokenizer_config.json (parsed or text). */
  tokenizerConfig: string | Json;
  /** generation_config.json: its eos_token_id list gives the stop ids. */
  generationConfig?: string | Json;
  /** A chat template to use instead of (or when missing from) tokenizer_config.json. */
  chatTemplate?: string;
}

/**
 * A Hugging Face tokenizer (tokenizer.json through @huggingface/tokenizers) with its chat template
 * (tokenizer_config.json through @huggingface/jinja) and stop ids (generation_config.json).
 * Platform-neutral: it takes file contents; `loadTokenizer(dir)` in '@llava-mini/llm/node' reads them.
 */
export class Tokenizer {
  readonly bosToken: string | undefined;
  readonly bosId: number | undefined;
  /** Token ids that end generation: generation_config's eos_token_id, else tokenizer_config's eos_token. */
  readonly stopIds: readonly number[];
  readonly chatTemplate: string | undefined;
  private readonly hf: HfTokenizer;
  private readonly config: Json;
  private template: Template | undefined;
  /** Whether the vocabulary writes bytes as characters (a ByteLevel decoder), so a token's bytes can be read from its text. */
  private readonly byteLevel: boolean;

  private constructor(files: TokenizerFiles) {
    const json = parseJson('tokenizer.json', files.tokenizer);
    this.config = parseJson('tokenizer_config.json', files.tokenizerConfig);
    try {
      this.hf = new HfTokenizer(json, this.config);
    } catch (err) {
      throw new ModelFilesError('tokenizer.json', `cannot be loaded: ${errorMessage(err)}`, { cause: err });
    }
    const decoder = json.decoder as { type?: string; decoders?: { type?: string }[] } | undefined;
    this.byteLevel = decoder?.type === 'ByteLevel' || (decoder?.decoders ?? []).some((d) => d.type === 'ByteLevel');
    this.bosToken = tokenText(this.config.bos_token);
    this.bosId = this.bosToken === undefined ? undefined : this.hf.token_to_id(this.bosToken);
    this.chatTemplate = files.chatTemplate ?? chatTemplateOf(this.config);
    const generation = files.generationConfig === undefined ? undefined : parseJson('generation_config.json', files.generationConfig);
    let stops = idList(generation?.eos_token_id);
    if (!stops.length) {
      const eos = tokenText(this.config.eos_token);
      const id = eos === undefined ? undefined : this.hf.token_to_id(eos);
      if (id !== undefined) stops = [id];
    }
    this.stopIds = stops;
  }

  static fromFiles(files: TokenizerFiles): Tokenizer {
    return new Tokenizer(files);
  }

  /** Vocabulary size including added tokens (largest id + 1). */
  get vocabSize(): number {
    let max = -1;
    for (const id of this.hf.get_vocab(true).values()) max = Math.max(max, id);
    return max + 1;
  }

  /** Token ids of `text`; with `addSpecialTokens` the post-processor adds its tokens (Llama-3: BOS). */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    let ids: number[];
    try {
      ({ ids } = this.hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }));
    } catch (err) {
      // The library checks a tokenizer.json's pipeline only when it runs (a null step of a Sequence).
      throw new ModelFilesError('tokenizer.json', `cannot encode text: ${errorMessage(err)}`, { cause: err });
    }
    // A post-processor naming a special token the vocabulary lacks gives it a null id.
    if (!ids.every((id) => Number.isInteger(id))) throw new ModelFilesError('tokenizer.json', 'gives a token no id (a special token of its post-processor is missing from its vocabulary)');
    return ids;
  }

  /** Text of `ids`; special tokens are dropped unless `skipSpecialTokens` is false. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.hf.decode(ids as number[], { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  /** A token as the vocabulary writes it (a byte-level vocabulary's characters stand for bytes); undefined for an id it lacks. */
  tokenString(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /**
   * A token's own bytes (UTF-8), as OpenAI's logprobs report them: exact for a byte-level vocabulary,
   * even for a token that is part of a character; else the UTF-8 of its decoded text.
   */
  tokenBytes(id: number): number[] {
    const token = this.hf.id_to_token(id);
    const bytes = this.byteLevel && token !== undefined ? byteLevelBytes(token) : undefined;
    return bytes ?? [...new TextEncoder().encode(token === undefined ? '' : this.decode([id], { skipSpecialTokens: false }))];
  }

  /** The id of a token's text (e.g. '<|eot_id|>'), if the vocabulary has it. */
  tokenId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** Render the chat template as transformers' `apply_chat_template(messages, tokenize=False)` does. */
  applyChatTemplate(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (!this.chatTemplate) {
      throw new UnsupportedConfigError('chat_template', 'tokenizer_config.json has no chat template; pass one as `chatTemplate`');
    }
    this.template ??= new Template(this.chatTemplate);
    const special: Json = {};
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) special[key] = tokenText(this.config[key]) ?? '';
    try {
      // @huggingface/jinja supplies raise_exception itself.
      return this.template.render({ ...special, messages, add_generation_prompt: options.addGenerationPrompt ?? false });
    } catch (err) {
      throw new InvalidOptionError(`the chat template refused these messages: ${errorMessage(err)}`, { cause: err });
    }
  }
}

/** The ids of the assistant header (`<|start_header_id|>assistant<|end_header_id|>\n\n`), rendered by the template. */
export function assistantHeaderIds(tokenizer: Tokenizer): number[] {
  if (!tokenizer.chatTemplate) return [];
  const probe: ChatMessage[] = [{ role: 'user', content: 'x' }];
  const without = tokenizer.applyChatTemplate(probe);
  const withHeader = tokenizer.applyChatTemplate(probe, { addGenerationPrompt: true });
  if (!withHeader.startsWith(without) || withHeader.length === without.length) return [];
  return tokenizer.encode(withHeader.slice(without.length), { addSpecialTokens: false });
}
