import { AbortError, InvalidOptionError } from '@llava-mini/core';
import type { GeneratedToken } from '@llava-mini/llm';

/**
 * A streamed answer: iterate it for tokens, or await `done()` for the whole result. The work starts
 * when the answer is created (queued behind the conversation's earlier turns), not when it is
 * read, so answers asked one after another never wait on each other's readers; tokens produced
 * before they are read are buffered (at most maxNewTokens of them, and the assistant header). Leaving a `for await` early
 * stops the answer (done() then rejects with AbortError).
 */
export class Answer<R> implements AsyncIterable<GeneratedToken> {
  private readonly tokens: GeneratedToken[] = [];
  private readonly result: Promise<R>;
  private readonly cancel = new AbortController();
  private ended = false;
  private wake: (() => void) | undefined;
  private iterated = false;

  constructor(run: (emit: (token: GeneratedToken) => void, cancel: AbortSignal) => Promise<R>) {
    const emit = (t: GeneratedToken) => {
      this.tokens.push(t);
      this.notify();
    };
    this.result = run(emit, this.cancel.signal).finally(() => {
      this.ended = true;
      this.notify();
    });
    this.result.catch(() => {}); // reported by done() and the iterator; nobody may be waiting here
  }

  [Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    if (this.iterated) throw new InvalidOptionError('an answer can be iterated once');
    this.iterated = true;
    let read = 0;
    return {
      next: async () => {
        for (;;) {
          if (read < this.tokens.length) return { done: false, value: this.tokens[read++] };
          if (this.ended) {
            await this.result; // throws the answer's error
            return { done: true, value: undefined };
          }
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      },
      return: async () => {
        if (!this.ended) this.cancel.abort(new AbortError('the answer was left before its end'));
        await this.result.catch(() => {});
        return { done: true, value: undefined };
      },
    };
  }

  /** The whole result, once the answer has ended (or the error that stopped it). */
  done(): Promise<R> {
    return this.result;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
