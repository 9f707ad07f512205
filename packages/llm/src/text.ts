import type { Tokenizer } from './tokenizer.js';

/**
 * Streams text from token ids without splitting multi-byte characters: a byte-level BPE token can
 * end inside a UTF-8 sequence, and its text is held back until the character is complete. Decodes a
 * short window (the previous piece plus new ids), so each push costs O(1) (the method of Hugging
 * Face's text-generation-inference).
 */
export class StreamDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tokenizer: Tokenizer) {}

  /** Add one id; returns the text it completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (text.length > prefix.length && !text.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return text.slice(prefix.length);
    }
    return '';
  }

  /** Text still held back (an incomplete character at the end), decoded as is. */
  flush(): string {
    const prefix = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return text.length > prefix.length ? text.slice(prefix.length) : '';
  }
}

/**
 * The visible text of a generation, token by token: hides a generated assistant header at the start
 * (LLaVA-Mini's reference prompt ends before it, so the model may write it), streams UTF-8 safely,
 * and ends at the first stop string, holding back text that may be the start of one.
 */
export class TextStream {
  private readonly decoder: StreamDecoder;
  private readonly held: number[] = [];
  private headerOpen: boolean;
  private headerDone = false;
  private full = '';
  private emitted = 0;
  private stopped = false;

  constructor(
    tokenizer: Tokenizer,
    private readonly stopStrings: readonly string[],
    /** Ids of the assistant header to consume; empty: none. */
    private readonly header: readonly number[],
  ) {
    this.decoder = new StreamDecoder(tokenizer);
    this.headerOpen = header.length > 0;
  }

  /**
   * Ids taken as the assistant header so far: the whole header once it is complete, or the start of
   * it while the ids still match (they become text, and count again, if a later id does not).
   */
  get headerIds(): number {
    return this.headerOpen ? this.held.length : this.headerDone ? this.header.length : 0;
  }

  /** The id that would continue the assistant header, while the ids so far may still be its start. */
  get nextHeaderId(): number | undefined {
    return this.headerOpen ? this.header[this.held.length] : undefined;
  }

  /** Add a generated id; returns the newly visible text, whether a stop string was reached, and whether the id was taken as the header. */
  push(id: number): { text: string; stopped: boolean; header: boolean } {
    if (this.stopped) return { text: '', stopped: true, header: false };
    if (this.headerOpen) {
      this.held.push(id);
      const n = this.held.length;
      if (this.held[n - 1] === this.header[n - 1]) {
        if (n === this.header.length) {
          this.held.length = 0;
          this.headerOpen = false;
          this.headerDone = true;
        }
        return { text: '', stopped: false, header: true };
      }
      // Not a header after all: its ids are ordinary text.
      this.headerOpen = false;
      for (const h of this.held.splice(0)) this.full += this.decoder.push(h);
    } else {
      this.full += this.decoder.push(id);
    }
    return this.release();
  }

  /** All visible text so far (up to a stop string). */
  text(): string {
    return this.stopped ? this.full : this.full + this.decoder.flush();
  }

  private release(): { text: string; stopped: boolean; header: false } {
    // A stop string may straddle earlier text: search from the longest overlap back.
    const longest = Math.max(0, ...this.stopStrings.map((s) => s.length));
    const from = Math.max(0, this.emitted - longest + 1);
    let cut = -1;
    for (const s of this.stopStrings) {
      const at = this.full.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      this.full = this.full.slice(0, Math.max(cut, this.emitted));
      return { text: this.take(this.full.length), stopped: true, header: false };
    }
    return { text: this.take(this.full.length - this.heldBack()), stopped: false, header: false };
  }

  /** Length of the longest end of the text that begins some stop string. */
  private heldBack(): number {
    let hold = 0;
    for (const s of this.stopStrings) {
      for (let k = Math.min(s.length - 1, this.full.length); k > hold; k--) {
        if (this.full.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return Math.min(hold, this.full.length - this.emitted);
  }

  private take(end: number): string {
    const out = this.full.slice(this.emitted, Math.max(end, this.emitted));
    this.emitted = Math.max(end, this.emitted);
    return out;
  }
}
