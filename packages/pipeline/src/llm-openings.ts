import type { LlamaModel, Sequence } from '@llava-mini/llm';

export interface LlmOpeningsStats {
  held: number;
  /** KV bytes the held openings take (0 for those the KV cap has evicted). */
  bytes: number;
  hits: number;
  misses: number;
}

interface Held {
  sequence: Sequence;
  /** Forks of one sequence must not overlap: each waits for the one before. */
  last: Promise<unknown>;
}

/**
 * The LLM's cache of video prompts' openings: the rows before the question (the fused text before
 * the placeholder, then one vision token per frame), by the video's key and the ids before the
 * placeholder. Pre-fusion is causal, so these rows do not depend on what is asked after them, and
 * every new conversation or stateless request about the same video forks a held copy instead of
 * prefilling them. A copy is made only where the model's KV cap has room for it without evicting a
 * conversation, and the cap evicts held copies before any conversation's cache (then they are
 * dropped here); at most `max` are held, the least recently used let go first.
 */
export class LlmOpenings {
  private readonly held = new Map<string, Held>();
  private counts = { hits: 0, misses: 0 };

  constructor(
    private readonly llm: Pick<LlamaModel, 'cacheBytes' | 'cacheLimitBytes'>,
    readonly max = 8,
  ) {}

  /** A new sequence holding the opening `key` of `rows` positions, or undefined (counted as a miss). */
  async fork(key: string, rows: number): Promise<Sequence | undefined> {
    const h = this.held.get(key);
    if (!h || h.sequence.length !== rows) {
      if (h) this.drop(key);
      this.counts.misses++;
      return undefined;
    }
    this.held.delete(key);
    this.held.set(key, h);
    // The held copy may be evicted while this waits its turn, or while it is copied: a fork of an
    // evicted copy is empty, and one of the wrong length would answer without the video.
    const forked = h.last.catch(() => {}).then(async () => {
      if (h.sequence.length !== rows) return undefined;
      const sequence = await h.sequence.fork();
      if (sequence.length === rows) return sequence;
      sequence.dispose();
      return undefined;
    });
    h.last = forked;
    // Evicted or disposed meanwhile: the caller prefills as if it had never been held.
    const sequence = await forked.catch(() => undefined);
    if (!sequence) {
      this.drop(key);
      this.counts.misses++;
      return undefined;
    }
    this.counts.hits++;
    return sequence;
  }

  /** Hold a copy of `sequence` (which holds exactly the opening) under `key`. */
  async keep(key: string, sequence: Sequence): Promise<void> {
    if (this.max === 0 || this.held.has(key) || this.llm.cacheBytes + sequence.cacheBytes > this.llm.cacheLimitBytes) return;
    const copy = await sequence.fork().catch(() => undefined);
    if (!copy || this.held.has(key)) return copy?.dispose();
    copy.makeExpendable();
    this.held.set(key, { sequence: copy, last: Promise.resolve() });
    for (const old of this.held.keys()) if (this.held.size > this.max) this.drop(old);
  }

  get stats(): LlmOpeningsStats {
    return { held: this.held.size, bytes: [...this.held.values()].reduce((n, h) => n + h.sequence.cacheBytes, 0), ...this.counts };
  }

  dispose(): void {
    for (const key of [...this.held.keys()]) this.drop(key);
  }

  private drop(key: string): void {
    this.held.get(key)?.sequence.dispose();
    this.held.delete(key);
  }
}
