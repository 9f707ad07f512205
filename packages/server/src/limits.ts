// Limits on the shape of a request body that the byte limit does not bound: JSON.parse accepts a
// value nested 100,000 deep, and the structured clone that hands the body to a worker then
// overflowed the stack (a request that never answered, its worker slot taken).

/** Deepest nesting of arrays and objects a body may have; an OpenAI request needs fewer than 10 levels, a JSON schema a few dozen. */
export const MAX_BODY_DEPTH = 100;
