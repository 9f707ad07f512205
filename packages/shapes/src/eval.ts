import * as path from 'node:path';
import { AbortError, type ProgressCallback } from '@llava-mini/core';
import { readScenes } from './dataset.js';
import { QUESTION_TYPES, type QuestionType } from './questions.js';

export interface EvalItem {
  /** Absolute path of the picture. */
  image: string;
  question: string;
  answer: string;
  type: QuestionType;
}

/** What a model gave for one question. */
export interface ModelAnswer {
  text: string;
  ids: number[];
}

export type Answerer = (image: string, question: string) => Promise<ModelAnswer>;

export interface TypeScore {
  correct: number;
  total: number;
  accuracy: number;
}

export interface EvalReport {
  overall: TypeScore;
  perType: Record<QuestionType, TypeScore>;
  /** Every question with the model's answer, in data set order. */
  answers: (EvalItem & ModelAnswer & { correct: boolean })[];
}

/** The questions of a data set written by writeDataset (the first `limit` pictures). */
export function evalItems(dir: string, options: { limit?: number } = {}): EvalItem[] {
  const scenes = readScenes(dir).slice(0, options.limit);
  return scenes.flatMap((s) => s.questions.map((q) => ({ image: path.resolve(dir, s.file), question: q.question, answer: q.answer, type: q.type })));
}

/** Whether a generated answer is the expected word: case, surrounding space and a final full stop do not count. */
export function isCorrect(text: string, expected: string): boolean {
  return text.trim().replace(/\.$/, '').toLowerCase() === expected;
}

const score = (correct: number, total: number): TypeScore => ({ correct, total, accuracy: total ? correct / total : 0 });

/** Ask every question and score the answers per question type (exact match of the one-word answer). */
export async function evaluate(items: readonly EvalItem[], answer: Answerer, options: { onProgress?: ProgressCallback; signal?: AbortSignal } = {}): Promise<EvalReport> {
  const answers: EvalReport['answers'] = [];
  for (const [i, item] of items.entries()) {
    if (options.signal?.aborted) throw new AbortError('evaluation aborted');
    const got = await answer(item.image, item.question);
    answers.push({ ...item, ...got, correct: isCorrect(got.text, item.answer) });
    options.onProgress?.({ task: 'eval', done: i + 1, total: items.length, item: item.type });
  }
  return { ...summarize(answers), answers };
}

export function summarize(answers: readonly { type: QuestionType; correct: boolean }[]): Pick<EvalReport, 'overall' | 'perType'> {
  const perType = {} as Record<QuestionType, TypeScore>;
  for (const t of QUESTION_TYPES) {
    const these = answers.filter((a) => a.type === t);
    perType[t] = score(these.filter((a) => a.correct).length, these.length);
  }
  return { overall: score(answers.filter((a) => a.correct).length, answers.length), perType };
}

/** The report as a small text table. */
export function formatReport(report: Pick<EvalReport, 'overall' | 'perType'>): string {
  const row = (name: string, s: TypeScore) => `${name.padEnd(8)} ${(100 * s.accuracy).toFixed(1).padStart(6)} %  ${String(s.correct).padStart(5)} / ${s.total}`;
  return ['type     accuracy   correct / total', ...QUESTION_TYPES.map((t) => row(t, report.perType[t])), row('overall', report.overall)].join('\n');
}
