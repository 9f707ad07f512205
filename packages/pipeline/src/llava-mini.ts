import type { Answer } from './answer.js';
import { type ChatSource, Completions } from './completions.js';
import type { AskResult } from './ask-result.js';
import { type AskOptions, askOnce, type ChatOptions, Conversation } from './conversation.js';
import { type LiveOptions, LiveStream } from './live.js';
import type { ModelParts } from './model-parts.js';
import type { VisionPipeline } from './vision.js';

export type { InputResolver, ModelParts, Pictures } from './model-parts.js';

/**
 * LLaVA-Mini: image and video question answering with one vision token per picture. The model
 * holds the stages' sessions and weights only; each conversation (and each one-off `ask`) owns its
 * KV cache and its pictures' features, so any number of them can share one model, interleaved or
 * at once (their runs are queued, one at a time, in order). `I` is what the platform accepts as
 * input (NodeInput in Node, WebInput in the browser). The platform entries add `fromPretrained`.
 */
export class LlavaMini<I = unknown> {
  /**
   * `chat(input?, options?)` starts a conversation about `input` (or text only when input is
   * undefined). Follow-up questions reuse its KV cache and its pictures' features: nothing is
   * encoded twice. `dispose()` it when done (the model's KV cap evicts idle conversations
   * otherwise, see kvCacheBytes). `chat.completions.create({ messages, stream, ... })` is OpenAI's
   * API over it.
   */
  readonly chat: ((input?: I, options?: ChatOptions) => Conversation<I>) & { completions: Completions };

  constructor(readonly parts: ModelParts<I>) {
    const chat = (input?: I, options: ChatOptions = {}) => new Conversation(this.parts, input, options);
    // Requests name their pictures by URL or path, which every platform's input type accepts.
    this.chat = Object.assign(chat, { completions: new Completions(chat as unknown as ChatSource) });
  }

  get vision(): VisionPipeline {
    return this.parts.vision;
  }

  /**
   * Answer one question about `input` (an image, several images, or a video; undefined for text
   * only) in a fresh conversation, freed when the answer ends.
   */
  ask(input: I | undefined, question: string, options: AskOptions & ChatOptions = {}): Answer<AskResult> {
    const { system, addAssistantHeader, dropDuplicateBos, history, videoStateBytes: _, ...ask } = options;
    // One question: no follow-up will carry on from a video's frame states, so none are kept.
    return askOnce(this.chat(input, { system, addAssistantHeader, dropDuplicateBos, history, videoStateBytes: 0 }), question, ask);
  }

  /**
   * A live conversation about a stream of frames: `push()` them as they arrive (or `follow()` a
   * source), `ask()` at any moment about the frames in its window. Each frame is encoded once, on
   * arrival; a question runs only its own text against each frame's kept prefix and the LLM.
   */
  live(options?: LiveOptions): LiveStream<I> {
    return new LiveStream(this.parts, options);
  }

  dispose(): Promise<void> {
    return this.parts.dispose();
  }
}
