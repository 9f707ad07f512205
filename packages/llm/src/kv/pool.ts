import { KvCacheFullError } from '@llava-mini/core';

/** What the pool needs of a cache: its size, whether anything is running on it, and a way to take its buffers. */
export interface Evictable {
  readonly bytes: number;
  /** No run or generation holds it. */
  readonly idle: boolean;
  /** Drop the buffers; the owner recomputes what they held on its next turn. */
  evict(): void;
  /** A memo's cache (kept to save work, never needed): evicted before any other. */
  readonly expendable: boolean;
}

/**
 * The caches of one model's sequences, under one byte cap. The policy when a cache must grow past
 * the cap: evict idle caches, memos (`expendable`) first, then least recently used first; their owners recompute what they held on
 * their next turn. When the caches that are running need more than the cap by themselves, the run
 * that asked for more fails with KvCacheFullError (code KV_CACHE_FULL); nothing else is disturbed.
 */
export class KvPool {
  /**
   * Most recently used last. Weak, so a sequence its owner dropped without dispose() is
   * garbage-collected with its buffers like any object (and leaves the count then).
   */
  private readonly refs = new Set<WeakRef<Evictable>>();

  constructor(readonly limitBytes: number) {}

  /** Bytes all caches take now. */
  get bytes(): number {
    let n = 0;
    for (const c of this.live()) n += c.bytes;
    return n;
  }

  add(cache: Evictable): WeakRef<Evictable> {
    const ref = new WeakRef(cache);
    this.refs.add(ref);
    return ref;
  }

  remove(ref: WeakRef<Evictable>): void {
    this.refs.delete(ref);
  }

  touch(ref: WeakRef<Evictable>): void {
    this.refs.delete(ref);
    this.refs.add(ref);
  }

  /** Make room for `extra` more bytes for `cache`, evicting idle caches if needed. */
  reserve(cache: Evictable, extra: number): void {
    let total = this.bytes + extra;
    if (total <= this.limitBytes) return;
    // Memos first, then the others; least recently used first within each.
    for (const expendable of [true, false]) {
      for (const c of this.live()) {
        if (c === cache || !c.idle || c.bytes === 0 || c.expendable !== expendable) continue;
        total -= c.bytes;
        c.evict();
        if (total <= this.limitBytes) return;
      }
    }
    throw new KvCacheFullError(total, this.limitBytes);
  }

  private *live(): Generator<Evictable> {
    for (const ref of this.refs) {
      const c = ref.deref();
      if (c) yield c;
      else this.refs.delete(ref);
    }
  }
}
