// LLaVA-Mini's prompt (spec §4.3-4.4): the system prompt, the `<image>` placeholder and its id, and
// the reference's chunk-wise tokenization around it. It lives beside pre-fusion because pre-fusion
// and the LLM input (llm-input.ts) are where the placeholder means something; the LLaMA package
// below knows only the chat template.
import { InvalidOptionError } from '@llava-mini/core';
import type { ChatMessage, Tokenizer } from '@llava-mini/llm';

/** LLaVA-Mini's system prompt (`conv_llava_llama_3_1`, spec §4.3). */
export const LLAVA_SYSTEM_PROMPT =
  'You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.';

/** The id that marks where vision tokens go (LLaVA's IMAGE_TOKEN_INDEX). */
export const IMAGE_TOKEN_INDEX = -200;
export const IMAGE_TOKEN = '<image>';
const IMAGE_PLACEHOLDER = '<image-placeholder>';

/** One finished exchange of a conversation. */
export interface ChatTurn {
  user: string;
  assistant: string;
}

export interface LlavaPromptOptions {
  /** Earlier turns, oldest first; the image goes with the first user message. */
  history?: readonly ChatTurn[];
  /** Whether the conversation has an image (default true): its user message gets `<image>\n`. */
  image?: boolean;
  /** Default LLAVA_SYSTEM_PROMPT. */
  system?: string;
  /**
   * End the prompt with the assistant header, as in training. Default false: the reference's
   * prompt (add_generation_prompt=False), after which the model writes the header itself.
   */
  addAssistantHeader?: boolean;
  /** Drop the second of the two leading BOS tokens the reference produces (training has one). Default false. */
  dropDuplicateBos?: boolean;
}

export interface LlavaPrompt {
  /** Token ids; IMAGE_TOKEN_INDEX (-200) where the vision tokens go. */
  ids: number[];
  /** The rendered prompt text (with the literal `<image>`). */
  text: string;
}

/** The user message as run_llava_mini.py builds it: `<image>\n` + question, or the placeholder replaced. */
function withImage(question: string): string {
  return question.includes(IMAGE_PLACEHOLDER) ? question.split(IMAGE_PLACEHOLDER).join(IMAGE_TOKEN) : `${IMAGE_TOKEN}\n${question}`;
}

/** The conversation as chat-template messages (system, then user/assistant turns, then the new question). */
export function llavaMessages(question: string, options: LlavaPromptOptions = {}): ChatMessage[] {
  if (typeof question !== 'string') throw new InvalidOptionError(`the question must be a string, got ${typeof question}`);
  const users = [...(options.history ?? []).map((t) => t.user), question];
  const image = options.image ?? true;
  const messages: ChatMessage[] = [{ role: 'system', content: options.system ?? LLAVA_SYSTEM_PROMPT }];
  users.forEach((user, i) => {
    messages.push({ role: 'user', content: image && i === 0 ? withImage(user) : user });
    const answer = options.history?.[i]?.assistant;
    if (answer !== undefined) messages.push({ role: 'assistant', content: answer });
  });
  return messages;
}

/**
 * LLaVA's `tokenizer_image_token` (spec §4.4): split the text on `<image>`, tokenize each chunk on
 * its own with the tokenizer's special tokens, keep the first chunk's leading BOS once, drop the
 * first token of every chunk after it, and put IMAGE_TOKEN_INDEX between chunks.
 */
export function tokenizeWithImage(tokenizer: Tokenizer, text: string): number[] {
  const chunks = text.split(IMAGE_TOKEN).map((chunk) => tokenizer.encode(chunk));
  const ids: number[] = [];
  let offset = 0;
  if (chunks[0].length > 0 && chunks[0][0] === tokenizer.bosId) {
    offset = 1;
    ids.push(chunks[0][0]);
  }
  chunks.forEach((chunk, i) => {
    // The reference inserts [IMAGE_TOKEN_INDEX] * (offset + 1) and drops `offset` ids from it too.
    if (i > 0) ids.push(IMAGE_TOKEN_INDEX);
    ids.push(...chunk.slice(offset));
  });
  return ids;
}

/**
 * The LLaVA-Mini prompt exactly as the reference builds it (spec §4.3, §4.4): system prompt, the
 * template rendered without a generation prompt, chunk-wise tokenization around `<image>`. The
 * result starts with two BOS tokens (the tokenizer's and the template's) unless dropDuplicateBos.
 */
export function buildLlavaPrompt(tokenizer: Tokenizer, question: string, options: LlavaPromptOptions = {}): LlavaPrompt {
  const text = tokenizer.applyChatTemplate(llavaMessages(question, options), { addGenerationPrompt: options.addAssistantHeader ?? false });
  const ids = tokenizeWithImage(tokenizer, text);
  if (options.dropDuplicateBos && ids.length > 1 && ids[0] === tokenizer.bosId && ids[1] === tokenizer.bosId) ids.splice(1, 1);
  return { ids, text };
}
