// Limits on the shape of a request body that the byte limit does not bound. JSON.parse accepts a
// value nested 100,000 deep in 600 kB, but whatever walks it recursively afterwards overflows the
// stack: JSON.stringify in an error message, and the structured clone that hands the body to a
// worker (a RangeError there once left the request hanging and its worker slot taken).

/** Deepest nesting of arrays and objects a body may have; an OpenAI request needs fewer than 10 levels, a JSON schema a few dozen. */
export const MAX_BODY_DEPTH = 100;

/** Whether `value` nests arrays and objects more than `max` levels deep (walked with a stack, not recursion). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
