/**
 * A small byte-level BPE trainer, the same algorithm Hugging Face `tokenizers`' BpeTrainer runs, so
 * the files it feeds are an ordinary GPT-2/Llama-3 style tokenizer rather than a lookalike.
 */

/**
 * Llama-3's pre-tokenizer regex, exactly as its tokenizer.json spells it (Oniguruma syntax). It goes
 * into the written tokenizer.json verbatim.
 */
export const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * The same regex for JavaScript: Node 20's RegExp has no inline `(?i:...)` group, so the contractions
 * are spelled out case by case. Only used on the built-in corpus, where this is equivalent.
 */
const SPLIT_JS = new RegExp(
  "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  'gu',
);

/** Split text into pre-tokens the way Llama-3's Split pre-tokenizer (behavior Isolated) does. */
export function preTokenize(text: string): string[] {
  return text.match(SPLIT_JS) ?? [];
}

/**
 * GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes are
 * shifted to U+0100 and up, so every byte is one visible character (space is "Ġ", newline "Ċ").
 * The returned list is in GPT-2's table order (printable bytes first, then the shifted ones), which
 * is also the order of Llama-3's first 256 ids: id 0 is "!", 198 is "Ċ", 220 is "Ġ".
 */
export function byteLevelAlphabet(): { byte: number; char: string }[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = printable.map((b) => ({ byte: b, char: String.fromCharCode(b) }));
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) table.push({ byte: b, char: String.fromCharCode(256 + shifted++) });
  }
  return table;
}

const BYTE_TO_CHAR: string[] = (() => {
  const out: string[] = new Array(256);
  for (const { byte, char } of byteLevelAlphabet()) out[byte] = char;
  return out;
})();

/** UTF-8 bytes of `text` as byte-level characters (what the ByteLevel pre-tokenizer emits). */
export function toByteLevel(text: string): string {
  let out = '';
  for (const b of new TextEncoder().encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

export interface BpeModel {
  /** token -> id; ids 0..255 are the byte alphabet, then merged tokens in the order they were learned. */
  vocab: Map<string, number>;
  /** "left right" strings, highest priority first (the spelling tokenizers 0.19 reads). */
  merges: string[];
}

function pairKey(a: string, b: string): string {
  // Byte-level symbols never contain a space, so a space is a safe separator.
  return `${a} ${b}`;
}

/**
 * Learn merges on `corpus` until the vocabulary has `vocabSize` tokens (or no pair is left).
 * Each step merges the most frequent adjacent pair, counted over pre-tokens (a pair never spans two);
 * ties go to the pair whose left, then right, symbol sorts first, so training is deterministic.
 */
export function trainByteLevelBpe(corpus: string, vocabSize: number): BpeModel {
  const vocab = new Map<string, number>();
  for (const { char } of byteLevelAlphabet()) vocab.set(char, vocab.size);

  const counts = new Map<string, number>();
  for (const piece of preTokenize(corpus)) {
    const word = toByteLevel(piece);
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  // Words in first-seen order; only their symbol split changes from step to step.
  const words = [...counts].map(([w, n]) => ({ symbols: [...w], n }));

  const merges: string[] = [];
  while (vocab.size < vocabSize) {
    const pairs = new Map<string, { a: string; b: string; n: number }>();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = pairKey(symbols[i], symbols[i + 1]);
        const p = pairs.get(key);
        if (p) p.n += n;
        else pairs.set(key, { a: symbols[i], b: symbols[i + 1], n });
      }
    }
    let best: { a: string; b: string; n: number } | undefined;
    for (const p of pairs.values()) {
      if (!best || p.n > best.n || (p.n === best.n && (p.a < best.a || (p.a === best.a && p.b < best.b)))) best = p;
    }
    if (!best) break;

    const merged = best.a + best.b;
    merges.push(pairKey(best.a, best.b));
    // Two different splits can spell the same token; it keeps its first id, as in tokenizers.
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const w of words) {
      const s = w.symbols;
      const next: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === best.a && s[i + 1] === best.b) {
          next.push(merged);
          i++;
        } else next.push(s[i]);
      }
      w.symbols = next;
    }
  }
  return { vocab, merges };
}
