import { InvalidOptionError, type Tensor } from '@llava-mini/core';
import { type GenerateOptions, generate, type Generation } from './generate.js';
import type { LlamaModel } from './model.js';
import { buildLlavaPrompt, type ChatTurn, IMAGE_TOKEN_INDEX, type LlavaPromptOptions } from './prompt.js';
import type { Tokenizer } from './tokenizer.js';

/** Turns prompt ids (IMAGE_TOKEN_INDEX where the vision tokens go) into LLM input embeddings [1, S, H]. */
export type EmbedFn = (ids: number[]) => Promise<Tensor>;

export interface AskOptions extends Omit<GenerateOptions, 'tokenizer'> {
  /**
   * How prompt ids become embeddings. The pipeline passes its fusion (pre-fusion layers, vision
   * tokens in place of IMAGE_TOKEN_INDEX); the default embeds plain token ids and refuses images.
   */
  embed?: EmbedFn;
}

/** A piece of the KV cache: the prompt or answer text it holds, its ids, and how many positions it took. */
interface Segment {
  text: string;
  ids: number[];
  positions: number;
}

const positionsOf = (segments: readonly Segment[]): number => segments.reduce((n, s) => n + s.positions, 0);

/**
 * A multi-turn LLaVA-Mini conversation on one LlamaModel. A follow-up question does not re-run the
 * conversation: the prompt is rendered with the history, the part of the KV cache whose text is a
 * prefix of it is kept, and only the rest (the end of the last answer, the new question) is run.
 */
export class LlavaChat {
  private readonly turns: ChatTurn[] = [];
  private segments: Segment[] = [];

  constructor(
    readonly model: LlamaModel,
    readonly tokenizer: Tokenizer,
    readonly options: LlavaPromptOptions = {},
  ) {
    // Earlier turns given up front (a stateless API replaying a conversation): the first ask runs them all.
    this.turns.push(...(options.history ?? []));
  }

  get history(): readonly ChatTurn[] {
    return this.turns;
  }

  /** The ids whose positions the KV cache holds (IMAGE_TOKEN_INDEX where vision tokens went). */
  get context(): number[] {
    return this.segments.flatMap((s) => s.ids);
  }

  /** Ask the next question; iterate the result, or `await result.done()`. */
  ask(question: string, options: AskOptions = {}): Generation {
    const prompt = buildLlavaPrompt(this.tokenizer, question, { ...this.options, history: this.turns });
    const embed = options.embed ?? ((ids: number[]) => this.plainEmbed(ids));
    const keep = this.reusableSegments(prompt.text);
    const keptText = this.segments.slice(0, keep).map((s) => s.text).join('');
    const newText = prompt.text.slice(keptText.length);
    // A fresh prompt goes in whole (with its image placeholder); a follow-up only as the text past the cache.
    const ids = keep === 0 ? prompt.ids : this.tokenizer.encode(newText, { addSpecialTokens: false });
    this.segments = this.segments.slice(0, keep);
    const kept = positionsOf(this.segments);
    this.model.truncate(kept);
    let promptPositions = ids.length;
    const generation = generate(
      this.model,
      {
        length: ids.length,
        embeds: async () => {
          const embeds = await embed(ids);
          promptPositions = embeds.dims[1]; // vision tokens may take more (or fewer) rows than the placeholder
          return embeds;
        },
      },
      { ...options, tokenizer: this.tokenizer },
    );
    void generation.finished.then((result) => {
      // The cache now holds the prompt and every generated id but the unfed last one.
      const fed = result.ids.slice(0, this.model.length - kept - promptPositions);
      this.segments.push({ text: newText, ids, positions: promptPositions });
      this.segments.push({ text: this.tokenizer.decode(fed, { skipSpecialTokens: false }), ids: fed, positions: fed.length });
      this.turns.push({ user: question, assistant: result.text });
    }, () => {
      this.segments = []; // the cache no longer matches: the next question starts over
    });
    return generation;
  }

  /** Forget the conversation (the cache buffers stay allocated). */
  reset(): void {
    this.turns.length = 0;
    this.segments = [];
    this.model.reset();
  }

  private plainEmbed(ids: number[]): Promise<Tensor> {
    if (ids.includes(IMAGE_TOKEN_INDEX)) {
      throw new InvalidOptionError('this prompt has an image: pass `embed` (the pipeline fuses the vision tokens), or use `image: false`');
    }
    return this.model.embed(ids);
  }

  /** How many leading cache segments hold a prefix of `text` (0 when the cache cannot be reused). */
  private reusableSegments(text: string): number {
    // The cache must still hold what the segments say (nobody else ran the model meanwhile).
    if (this.model.length !== positionsOf(this.segments)) return 0;
    let prefix = '';
    let keep = 0;
    for (const s of this.segments) {
      if (!text.startsWith(prefix + s.text)) break;
      prefix += s.text;
      keep++;
    }
    return keep;
  }
}
