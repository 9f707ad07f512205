import { AbortError, InvalidOptionError } from '@llava-mini/core';
import type { GeneratedToken } from '@llava-mini/llm';

/**
 * Where a running answer's tokens go, and the signal that stops it: made first and handed to the
 * work (which pushes tokens into it), then to the Answer that readers hold.
 */
export class TokenChannel {
  readonly tokens: GeneratedToken[] = [];
  private readonly stop = new AbortController();
  private wake: (() => void) | undefined;
  ended = false;

  /** Aborted when a reader leaves the answer before its end. */
  get signal(): AbortSignal {
    return this.stop.signal;
  }

  readonly push = (t: GeneratedToken): void => {
    this.tokens.push(t);
    this.notify();
  };

  end(): void {
    this.ended = true;
    this.notify();
  }

  cancel(reason: unknown): void {
    this.stop.abort(reason);
  }

  /** Resolves at the next token or the end. */
  next(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * A streamed answer: iterate it for tokens, or await `done()` for the whole result. The work starts
 * when the answer is created (queued behind the conversation's earlier turns), not when it is
 * read, so answers asked one after another never wait on each other's readers; tokens produced
 * before they are read are buffered (at most maxNewTokens of them, and the assistant header). Leaving a `for await` early
 * stops the answer (done() then rejects with AbortError).
 */
export class Answer<R> implements AsyncIterable<GeneratedToken> {
  private readonly result: Promise<R>;
  private iterated = false;

  /** `result`: the work that pushes its tokens into `channel`. */
  constructor(
    private readonly channel: TokenChannel,
    result: Promise<R>,
  ) {
    this.result = result.finally(() => channel.end());
    this.result.catch(() => {}); // reported by done() and the iterator; nobody may be waiting here
  }

  [Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    if (this.iterated) throw new InvalidOptionError('an answer can be iterated once');
    this.iterated = true;
    let read = 0;
    const channel = this.channel;
    return {
      next: async () => {
        for (;;) {
          if (read < channel.tokens.length) return { done: false, value: channel.tokens[read++] };
          if (channel.ended) {
            await this.result; // throws the answer's error
            return { done: true, value: undefined };
          }
          await channel.next();
        }
      },
      return: async () => {
        if (!channel.ended) channel.cancel(new AbortError('the answer was left before its end'));
        await this.result.catch(() => {});
        return { done: true, value: undefined };
      },
    };
  }

  /** The whole result, once the answer has ended (or the error that stopped it). */
  done(): Promise<R> {
    return this.result;
  }
}
