// The structured-output, logprobs and n calls that structured-output.test.ts makes on the Node entry
// and, bundled into structured-page.ts, on the browser entry in Chromium: one function, so the two
// runs ask exactly the same things and their results can be compared field by field.
import type { AskOptions, AskResult, ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParams } from '@llava-mini/pipeline';

/** What the calls need of a model: either entry's LlavaMini. */
interface Model {
  ask(input: string, question: string, options: AskOptions): { done(): Promise<AskResult> };
  chat: { completions: { create(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> } };
}

/** What each call gave, as plain JSON. */
export interface StructuredResults {
  /** ask() under a JSON schema, greedy. */
  schema: { ids: number[]; text: string; finishReason: string };
  /** ask() with n = 3, greedy, logprobs with the top 3: each choice's ids, and each token's logprob and top ids. */
  choices: { ids: number[][]; logprobs: { choice: number; id: number; logprob: number; top: number[] }[] };
  /** chat.completions.create with response_format json_schema, n = 2 and top_logprobs 2. */
  completion: Pick<ChatCompletion, 'choices' | 'usage'>;
  /** The same streamed, with response_format json_object: each choice's content put together. */
  streamed: { content: string[]; finish: (string | null)[] };
}

export const QUESTION = 'Describe the picture as JSON.';

/** A schema whose every answer ends within the budget (enums, a bounded integer and array, an optional field). */
export const SCHEMA = {
  type: 'object',
  properties: {
    shape: { enum: ['circle', 'square', 'triangle'] },
    count: { type: 'integer', minimum: 0, maximum: 9 },
    colors: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, minItems: 1, maxItems: 2 },
    visible: { type: 'boolean' },
  },
  required: ['shape', 'count', 'colors'],
  additionalProperties: false,
} as const;

/** Enough tokens for the longest answer SCHEMA allows (~90 bytes), header included or not. */
export const MAX_TOKENS = 120;

export async function structuredCalls(model: Model, image: string, imageUrl: string): Promise<StructuredResults> {
  const r = await model.ask(image, QUESTION, { maxNewTokens: MAX_TOKENS, responseFormat: { type: 'json_schema', schema: SCHEMA } }).done();
  const logprobs: StructuredResults['choices']['logprobs'] = [];
  const several = await model
    .ask(image, QUESTION, {
      maxNewTokens: 4,
      n: 3,
      logprobs: true,
      topLogprobs: 3,
      onToken: (t) => logprobs.push({ choice: t.choice ?? 0, id: t.id, logprob: t.logprobs!.logprob, top: t.logprobs!.top.map((x) => x.id) }),
    })
    .done();
  const messages = [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: imageUrl } }, { type: 'text' as const, text: QUESTION }] }];
  const c = (await model.chat.completions.create({
    messages,
    max_tokens: MAX_TOKENS,
    n: 2,
    logprobs: true,
    top_logprobs: 2,
    response_format: { type: 'json_schema', json_schema: { name: 'scene', schema: SCHEMA, strict: true } },
  })) as ChatCompletion;
  const stream = await model.chat.completions.create({ messages, max_tokens: 48, n: 2, stream: true, response_format: { type: 'json_object' } });
  const streamed: StructuredResults['streamed'] = { content: ['', ''], finish: [null, null] };
  for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
    for (const ch of chunk.choices) {
      streamed.content[ch.index] += ch.delta.content ?? '';
      if (ch.finish_reason) streamed.finish[ch.index] = ch.finish_reason;
    }
  }
  return {
    schema: { ids: r.ids, text: r.text, finishReason: r.finishReason },
    choices: { ids: (several.choices ?? []).map((x) => x.ids), logprobs },
    completion: { choices: c.choices, usage: c.usage },
    streamed,
  };
}
