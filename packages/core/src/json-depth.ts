/**
 * Whether `value` nests arrays and objects more than `max` levels deep, walked with a stack rather
 * than recursion. JSON.parse accepts a value nested 100,000 deep in 600 kB, but whatever walks it
 * recursively afterwards (JSON.stringify, a structured clone to a worker) overflows the stack: input
 * from outside is held to a depth before it goes further.
 */
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
