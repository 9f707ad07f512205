import { InvalidOptionError } from '@llava-mini/core';

/** numpy's round(): halves go to the even neighbour (0.5 -> 0, 1.5 -> 2, 2.5 -> 2). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The frames the reference reads from a video (spec §6.1): one per second (floor(total / fps),
 * at least one, at most `maxFrames`), each the middle of an equal segment of [0, total - 1] with
 * numpy's rounding, as `get_seq_frames` does.
 */
export function frameIndices(total: number, fps: number, maxFrames?: number): number[] {
  if (!Number.isInteger(total) || total < 1) throw new InvalidOptionError(`a video needs at least one frame, got ${total}`);
  if (!(fps > 0)) throw new InvalidOptionError(`frame rate must be positive, got ${fps}`);
  if (maxFrames !== undefined && (!Number.isInteger(maxFrames) || maxFrames < 1)) {
    throw new InvalidOptionError(`maxFrames must be a positive integer, got ${maxFrames}`);
  }
  let n = Math.min(total, Math.max(1, Math.floor(total / fps)));
  if (maxFrames !== undefined) n = Math.min(n, maxFrames);
  const seg = (total - 1) / n;
  return Array.from({ length: n }, (_, i) => {
    const start = roundHalfEven(seg * i);
    const end = roundHalfEven(seg * (i + 1));
    return Math.floor((start + end) / 2);
  });
}
