// Regressions from fuzzing the chat-completions body (fuzz/requests.fuzz.ts): values nested 100,000
// deep, which JSON.parse accepts, overflowed the stack where an error quoted them (a RangeError, not
// a 400), and a field named with a line break made an error of two lines.
import { describe, expect, it } from 'vitest';
import { parseChatRequest } from '../src/index.js';

const deepArray = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
const deepObject = JSON.parse(`${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`);
const user = { role: 'user', content: 'Hi' };

describe('hostile request bodies get a typed one-line error', () => {
  it('a role, a content part type or a response_format type nested 100,000 deep', () => {
    for (const deep of [deepArray, deepObject]) {
      const bodies = [{ messages: [{ role: deep, content: 'x' }] }, { messages: [{ role: 'user', content: [{ type: deep }] }] }, { messages: [user], response_format: { type: deep } }];
      for (const body of bodies) expect(() => parseChatRequest(body)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
    expect(() => parseChatRequest({ messages: [{ role: deepObject, content: 'x' }] })).toThrow("'messages[0].role' must be system, developer, user or assistant, got object");
  });

  it('a field name with a line break is quoted on one line', () => {
    expect(() => parseChatRequest({ messages: [{ role: 'user', 'c\ntent': 'x' }] })).toThrow(/^unrecognized field 'messages\[0\]\.c\\ntent'$/);
  });
});
