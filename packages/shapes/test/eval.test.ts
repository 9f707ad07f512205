// The evaluation's sections: single questions about pictures and clips, and follow-ups asked in one
// conversation per picture or clip, scored beside the same questions asked first. The model here is
// an oracle that reads the data set's answers, wrong on purpose where the test says, so every
// score has a value known in advance.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidOptionError } from '@llava-mini/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EvalInput, type EvalItem, evalItems, type EvalModel, evaluateSections, followupConversations, formatSections, PICTURE_QUESTION_TYPES, type QuestionType, readScenes, VIDEO_QUESTION_TYPES, writeDataset } from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'shapes-eval-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const pictures = path.join(root, 'pictures');
const clips = path.join(root, 'clips');

beforeAll(async () => {
  await writeDataset(pictures, { count: 8, seed: 11 });
  await writeDataset(clips, { count: 4, seed: 12, clips: true });
}, 120_000);

const where = (input: EvalInput) => (typeof input === 'string' ? input : input.video);

/** Answers every question right, except in a conversation from the turn `wrongFrom` on. */
function oracle(wrongFrom = Infinity) {
  const truth = new Map<string, string>();
  for (const dir of [pictures, clips]) for (const s of readScenes(dir)) for (const q of s.questions) truth.set(`${path.resolve(dir, s.file)}\n${q.question}`, q.answer);
  const log = { inputs: [] as EvalInput[], open: 0 };
  const answer = (input: EvalInput, question: string) => {
    const text = truth.get(`${where(input)}\n${question}`);
    if (text === undefined) throw new Error(`not in the data sets: ${question} about ${where(input)}`);
    return { text, ids: [] };
  };
  const model: EvalModel = {
    ask: async (input, question) => answer(input, question),
    chat: (input) => {
      log.inputs.push(input);
      log.open++;
      let turn = 0;
      return {
        ask: async (question) => (turn++ >= wrongFrom ? { text: 'wrong', ids: [] } : answer(input, question)),
        dispose: () => void log.open--,
      };
    },
  };
  return { model, log };
}

describe('follow-up conversations', () => {
  it('ask the first three questions of each record in a seeded shuffled order, the same every time', () => {
    for (const dir of [pictures, clips]) {
      const records = readScenes(dir);
      const conversations = followupConversations(dir);
      expect(followupConversations(dir)).toEqual(conversations);
      expect(conversations.map((c) => c.record)).toEqual(records.filter((r) => r.questions.length >= 2).map((r) => r.id));
      for (const c of conversations) {
        const record = records.find((r) => r.id === c.record)!;
        expect(c.items.map((i) => i.turn)).toEqual([0, 1, 2].slice(0, Math.min(3, record.questions.length)));
        expect(new Set(c.items.map((i) => i.question)).size).toBe(c.items.length);
        for (const i of c.items) {
          expect(i.section).toBe('followups');
          expect(record.questions).toContainEqual(expect.objectContaining({ question: i.question, answer: i.answer, type: i.type }));
          expect(dir === clips ? i.video : i.image).toBe(path.resolve(dir, record.file));
        }
      }
      // Shuffled: not always the record's own first questions.
      expect(conversations.some((c) => c.items.some((i, k) => i.question !== records.find((r) => r.id === c.record)!.questions[k].question))).toBe(true);
    }
    expect(followupConversations(pictures, { limit: 3 })).toEqual(followupConversations(pictures).slice(0, 3));
    expect(() => followupConversations(pictures, { turns: 1 })).toThrow(InvalidOptionError);
  });

  it('single questions carry their section and media', () => {
    expect(new Set(evalItems(pictures).map((i) => i.section))).toEqual(new Set(['pictures']));
    expect(evalItems(clips).every((i: EvalItem) => i.section === 'video' && i.video?.match(/\.(mp4|webm)$/) && i.image === undefined)).toBe(true);
  });
});

describe('evaluateSections', () => {
  it('scores each section per type, and follow-ups beside the same questions asked first', async () => {
    const sets = { pictures: evalItems(pictures), video: evalItems(clips), followups: [...followupConversations(pictures), ...followupConversations(clips)] };
    const { model, log } = oracle(2);
    const progress: number[] = [];
    const total = sets.pictures.length + sets.video.length + sets.followups.reduce((n, c) => n + c.items.length, 0);
    const report = await evaluateSections(sets, model, { onProgress: (e) => (expect(e.total).toBe(total), progress.push(e.done)) });
    expect(progress).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(log.open).toBe(0);
    // One conversation per record, about the picture's path or the clip as a video.
    expect(log.inputs.filter((i) => typeof i === 'string')).toHaveLength(followupConversations(pictures).length);
    expect(log.inputs.filter((i) => typeof i !== 'string').every((i) => typeof i === 'object' && /\.(mp4|webm)$/.test(i.video))).toBe(true);

    const { pictures: p, video: v, followups: f } = report.sections;
    expect(p!.overall).toEqual({ correct: sets.pictures.length, total: sets.pictures.length, accuracy: 1 });
    expect(Object.keys(p!.perType)).toEqual([...PICTURE_QUESTION_TYPES]);
    expect(Object.keys(v!.perType)).toEqual([...VIDEO_QUESTION_TYPES]);
    expect(v!.overall.accuracy).toBe(1);
    // Turn 0 opens and is not scored; turn 1 is right and turn 2 wrong on purpose.
    const scored = sets.followups.flatMap((c) => c.items.slice(1));
    const second = scored.filter((i) => i.turn === 1).length;
    expect(f!.overall).toEqual({ correct: second, total: scored.length, accuracy: second / scored.length });
    expect(f!.askedFirst.overall).toEqual({ correct: scored.length, total: scored.length, accuracy: 1 });
    for (const [t, s] of Object.entries(f!.perType)) {
      expect(s.total, t).toBe(scored.filter((i) => i.type === t).length);
      expect(f!.askedFirst.perType[t as QuestionType]!.total, t).toBe(s.total);
    }
    expect(report.answers.filter((a) => a.section === 'followups')).toHaveLength(scored.length + sets.followups.length);

    const text = formatSections(report);
    expect(text.split('\n\n').map((t) => t.split('\n')[0])).toEqual([
      expect.stringMatching(/^pictures +accuracy +correct \/ total$/),
      expect.stringMatching(/^video +accuracy/),
      expect.stringMatching(/^followups +accuracy +correct \/ total +asked first$/),
    ]);
    expect(text).toMatch(new RegExp(`overall +${((100 * second) / scored.length).toFixed(1)} % +${second} / ${scored.length} +100\\.0 %$`));
  });

  it('refuses follow-ups whose questions were not asked first, and stops when aborted', async () => {
    const followups = followupConversations(clips);
    await expect(evaluateSections({ pictures: evalItems(pictures), followups }, oracle().model)).rejects.toThrow(/was not asked first/);
    const stop = new AbortController();
    stop.abort();
    await expect(evaluateSections({ pictures: evalItems(pictures) }, oracle().model, { signal: stop.signal })).rejects.toThrow(/aborted/);
  });
});
