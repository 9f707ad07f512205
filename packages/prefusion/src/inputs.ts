import { InvalidOptionError } from '@llava-mini/core';

/**
 * The prompt rows pre-fusion runs (spec §3.2, §10.11): those with ids > 0. Rows at ids <= 0 (the
 * -200 placeholder and any token 0) are key padding in the reference: never attended to, their
 * outputs replaced by the raw embeddings. Dropping them leaves the kept rows at consecutive
 * positions after the picture's, the reference's cumsum(valid) - 1.
 */
export function keptRows(ids: readonly number[]): number[] {
  if (ids.length === 0) throw new InvalidOptionError('the prompt has no tokens');
  if (!ids.every(Number.isInteger)) throw new InvalidOptionError('prompt ids must be integers');
  const kept: number[] = [];
  ids.forEach((id, t) => id > 0 && kept.push(t));
  return kept;
}
