import { describe, expect, it } from 'vitest';
import { bf16BitsToF32, castFloat, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, tensor, toFloat32 } from '../src/index.js';

describe('float16', () => {
  it('round-trips every finite half exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >> 10) & 0x1f;
      if (exp === 0x1f) continue;
      expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h === 0x8000 ? 0x8000 : h);
    }
  });
  it('rounds to nearest even, saturates to infinity, keeps NaN', () => {
    expect(f16BitsToF32(f32ToF16Bits(1 + 2 ** -11))).toBe(1); // halfway, ties to even (1.0)
    expect(f16BitsToF32(f32ToF16Bits(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9); // halfway, ties up to even
    expect(f16BitsToF32(f32ToF16Bits(65520))).toBe(Infinity);
    expect(f16BitsToF32(f32ToF16Bits(65519))).toBe(65504);
    expect(f16BitsToF32(f32ToF16Bits(2 ** -24))).toBe(2 ** -24);
    expect(f16BitsToF32(f32ToF16Bits(2 ** -26))).toBe(0);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
  });
});

describe('bfloat16', () => {
  it('round-trips every finite bfloat16 exactly', () => {
    for (let b = 0; b < 0x10000; b++) {
      if (((b >> 7) & 0xff) === 0xff) continue;
      expect(f32ToBf16Bits(bf16BitsToF32(b))).toBe(b);
    }
  });
  it('rounds to nearest even', () => {
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8))).toBe(1);
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
  });
});

describe('castFloat', () => {
  it('converts between float dtypes', () => {
    const t = tensor('float32', [3], Float32Array.of(1, -2.5, 0.1));
    expect(Array.from(toFloat32(castFloat(t, 'float16')))).toEqual([1, -2.5, f16BitsToF32(f32ToF16Bits(0.1))]);
    expect(castFloat(castFloat(t, 'bfloat16'), 'float32').data[1]).toBe(-2.5);
    expect(() => toFloat32(tensor('int32', [1]))).toThrow(/expected a float tensor/);
  });
});
