import { InvalidOptionError } from './errors.js';

/**
 * A command-line integer: plain decimal digits only. `Number('')` is 0, `Number(' ')` is 0 and
 * `Number('0x10')` is 16, so `--seed ''` would silently be seed 0; here each of those is refused.
 */
export function integerOption(value: string, flag: string, min?: number): number {
  const n = /^\s*[+-]?\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || (min !== undefined && n < min)) {
    throw new InvalidOptionError(`${flag} must be an integer${min === undefined ? '' : ` >= ${min}`}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** A command-line number: finite, and not the empty string that `Number` reads as 0. */
export function numberOption(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidOptionError(`${flag} must be a number, got ${JSON.stringify(value)}`);
  return n;
}
