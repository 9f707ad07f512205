/** Milliseconds on the monotonic clock (performance.now), for measuring how long something took. */
export const now = (): number => globalThis.performance.now();
