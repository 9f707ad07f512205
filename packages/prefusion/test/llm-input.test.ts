import { describe, expect, it } from 'vitest';
import { embeddingIds, IMAGE_TOKEN_INDEX, llmInput } from '../src/index.js';

const H = 3;
/** Rows whose values name them (row r holds r.0, r.1, r.2 plus `base`), so any misplaced row shows. */
const rows = (n: number, base: number) => Float32Array.from({ length: n * H }, (_, i) => base + Math.floor(i / H) + (i % H) / 10);

describe('the LLM input', () => {
  it('puts the vision tokens in place of the placeholder row and drops that row', () => {
    const ids = [7, 8, IMAGE_TOKEN_INDEX, 9];
    const fusedText = rows(4, 0);
    const visionTokens = rows(2, 100);
    const t = llmInput(ids, { fusedText, visionTokens });
    expect(t.dims).toEqual([1, 5, H]);
    // Text rows 0-1, the two vision rows, then text row 3 (row 2, the placeholder's, is gone).
    const want = [...fusedText.subarray(0, 2 * H), ...visionTokens, ...fusedText.subarray(3 * H)];
    expect(Array.from(t.data as Float32Array)).toEqual(want);
  });

  it('uses the text whole without a placeholder, and casts to the LLM dtype', () => {
    const fusedText = rows(2, 0);
    const t = llmInput([5, 6], { fusedText, visionTokens: rows(1, 100) }, 'float16');
    expect(t.dtype).toBe('float16');
    expect(t.dims).toEqual([1, 2, H]);
  });

  it('refuses two placeholders and text that is not rows of the ids', () => {
    expect(() => llmInput([IMAGE_TOKEN_INDEX, 1, IMAGE_TOKEN_INDEX], { fusedText: rows(3, 0), visionTokens: rows(1, 9) })).toThrow(/one <image> placeholder/);
    expect(() => llmInput([1, 2], { fusedText: new Float32Array(5), visionTokens: rows(1, 9) })).toThrow(/not rows/);
  });

  it('looks the placeholder up as token 0 for the text embeddings', () => {
    expect(embeddingIds([4, IMAGE_TOKEN_INDEX, 0, 9])).toEqual([4, 0, 0, 9]);
  });
});
