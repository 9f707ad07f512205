// A follow-up in a conversation gives exactly the tokens of the same conversation replayed from its
// history (the reference answers a follow-up that way: every prompt token through pre-fusion with all
// the text before it, earlier answers included). The checkpoints are random at std 0.3, where any
// difference in what pre-fusion sees changes the tokens.
import { beforeAll, describe, expect, it, vi } from 'vitest';
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

// resumes: pre-fusion carries on from each picture's state, so a follow-up runs only its own text
// (and reads no picture again); a video whose state is not kept (videoStateBytes 0) is read again
// and runs the earlier prompts' text first.
const cases: { name: string; fixture: () => Fixture; input: NodeInput | undefined; resumes?: boolean; videoStateBytes?: number }[] = [
  { name: 'image', fixture: () => standard, input: IMAGE, resumes: true },
  { name: 'HD image', fixture: () => hd, input: IMAGE, resumes: true },
  { name: 'video', fixture: () => standard, input: { video: VIDEO }, resumes: true },
  { name: 'video, no state kept', fixture: () => standard, input: { video: VIDEO }, resumes: false, videoStateBytes: 0 },
  { name: 'text only', fixture: () => standard, input: undefined },
];

describe.each(['cpu', 'wasm'] as const)('follow-ups on %s', (device) => {
  it.each(cases)('$name: each live turn gives the tokens of its conversation replayed from the history', async ({ fixture: f, input, resumes, videoStateBytes }) => {
    const model = await LlavaMini.fromPretrained(f().model, { device });
    const fuse = vi.spyOn(model.vision, 'fuse');
    const read = vi.spyOn(model.parts, 'resolveInput');
    try {
      const chat = model.chat(input, { videoStateBytes });
      const history: { user: string; assistant: string }[] = [];
      for (const [i, { q, n }] of TURNS.entries()) {
        fuse.mockClear();
        read.mockClear();
        const live = await chat.ask(q, { maxNewTokens: n }).done();
        if (i > 0 && resumes !== undefined) {
          const fused = fuse.mock.calls[0][1];
          if (resumes) expect(fused, `turn ${i + 1}: only its own text through pre-fusion`).toEqual(live.promptTokenIds);
          else expect(fused.length, `turn ${i + 1}: the earlier prompts again, then its own`).toBeGreaterThan(live.promptTokenIds.length);
          expect(read.mock.calls.length, `turn ${i + 1}: pictures read again`).toBe(resumes ? 0 : 1);
        }
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
