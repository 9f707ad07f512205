// A follow-up in a conversation gives exactly the tokens of the same conversation replayed from its
// history (the reference answers a follow-up that way: every prompt token through pre-fusion with all
// the text before it, earlier answers included). The checkpoints are random at std 0.3, where any
// difference in what pre-fusion sees changes the tokens.
import { beforeAll, describe, expect, it } from 'vitest';
import { LlavaMini, type NodeInput } from '../src/node.js';
import { type Fixture, fixture, IMAGE, VIDEO } from './fixtures.js';

const SLOW = 600_000;
const TURNS = [
  { q: 'What is in this picture?', n: 6 },
  { q: 'And what colour is it?', n: 9 },
  { q: 'Where is it?', n: 4 },
];

let standard: Fixture;
let hd: Fixture;
beforeAll(async () => {
  standard = await fixture('follow-standard', { seed: 11 });
  hd = await fixture('follow-hd', { seed: 11, resolutionRatio: 2, compressorSize: 2, imageSize: 112 });
});

const cases: { name: string; fixture: () => Fixture; input: NodeInput | undefined }[] = [
  { name: 'image', fixture: () => standard, input: IMAGE },
  { name: 'HD image', fixture: () => hd, input: IMAGE },
  { name: 'video', fixture: () => standard, input: { video: VIDEO } },
  { name: 'text only', fixture: () => standard, input: undefined },
];

describe.each(['cpu', 'wasm'] as const)('follow-ups on %s', (device) => {
  it.each(cases)('$name: each live turn gives the tokens of its conversation replayed from the history', async ({ fixture: f, input }) => {
    const model = await LlavaMini.fromPretrained(f().model, { device });
    try {
      const chat = model.chat(input);
      const history: { user: string; assistant: string }[] = [];
      for (const [i, { q, n }] of TURNS.entries()) {
        const live = await chat.ask(q, { maxNewTokens: n }).done();
        const replay = await model.ask(input, q, { maxNewTokens: n, history }).done();
        expect(live.ids, `turn ${i + 1}`).toEqual(replay.ids);
        history.push({ user: q, assistant: live.text });
      }
      chat.dispose();
    } finally {
      await model.dispose();
    }
  }, SLOW);
});
