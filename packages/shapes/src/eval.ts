import * as fs from 'node:fs';
import * as path from 'node:path';
import { AbortError, InvalidOptionError, type ProgressCallback } from '@llava-mini/core';
import { readScenes, type SceneRecord } from './dataset.js';
import { PICTURE_QUESTION_TYPES, QUESTION_TYPES, type QuestionType, VIDEO_QUESTION_TYPES } from './questions.js';

/** The parts of an evaluation: single questions about pictures, about clips, and follow-ups in a conversation. */
export const EVAL_SECTIONS = ['pictures', 'video', 'followups'] as const;
export type EvalSection = (typeof EVAL_SECTIONS)[number];

/**
 * The answer budget an evaluation gives (maxNewTokens; the assistant header the model writes is
 * outside it): the longest answer the shapes world expects is a four-shape scene as JSON, 55 tokens
 * in the shapes tokenizer (the bundled model's) and up to 194 in `@llava-mini/tiny`'s, then <|eot_id|>.
 */
export const MAX_ANSWER_TOKENS = 200;

/** Questions a conversation about one picture or clip asks: the first scores nothing, the rest are its follow-ups. */
export const FOLLOWUP_TURNS = 3;

export interface EvalItem {
  section: EvalSection;
  /** Absolute path of the picture (pictures, and follow-ups about a picture). */
  image?: string;
  /** Absolute path of the clip (video, and follow-ups about a clip). */
  video?: string;
  /** The record's id in its data set. */
  record: number;
  question: string;
  answer: string;
  type: QuestionType;
  /** Follow-ups only: the question's place in its conversation (0 opens it and is not scored). */
  turn?: number;
}

/** One conversation about a picture or a clip: its questions in the order they are asked. */
export interface FollowupConversation {
  image?: string;
  video?: string;
  record: number;
  items: EvalItem[];
}

/** What the model is given: a picture's path, or a clip as the runtime's video input. */
export type EvalInput = string | { video: string };

/** What a model gave for one question. */
export interface ModelAnswer {
  text: string;
  ids: number[];
}

export type Answerer = (input: EvalInput, question: string) => Promise<ModelAnswer>;

/** A model as the evaluation asks it: one question in a fresh conversation, or several in one. */
export interface EvalModel {
  ask: Answerer;
  /** A conversation about `input`: each question follows the earlier ones and the model's own answers to them. */
  chat(input: EvalInput): { ask(question: string): Promise<ModelAnswer>; dispose(): void };
}

export interface TypeScore {
  correct: number;
  total: number;
  accuracy: number;
}

/** Accuracy over a section's questions and per question type (the types the section asks, in QUESTION_TYPES order). */
export interface SectionScore {
  overall: TypeScore;
  perType: Partial<Record<QuestionType, TypeScore>>;
}

export interface FollowupScore extends SectionScore {
  /** The same questions (same record, same words) asked first, from the pictures and video sections. */
  askedFirst: SectionScore;
}

export type EvalAnswer = EvalItem & ModelAnswer & { correct: boolean };

export interface EvalReport extends SectionScore {
  /** Every question with the model's answer, in data set order. */
  answers: EvalAnswer[];
}

export interface SectionsReport {
  sections: { pictures?: SectionScore; video?: SectionScore; followups?: FollowupScore };
  /** Every question asked, section by section (a conversation's opening question included). */
  answers: EvalAnswer[];
}

/** What a data set written by writeDataset holds (meta.json `media`; sets written before clips existed hold pictures). */
export function datasetMedia(dir: string): 'picture' | 'video' {
  const file = path.join(dir, 'meta.json');
  if (!fs.existsSync(file)) return 'picture';
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { media?: string }).media === 'video' ? 'video' : 'picture';
}

function media(dir: string, record: SceneRecord, video: boolean): { image: string } | { video: string } {
  const file = path.resolve(dir, record.file);
  return video ? { video: file } : { image: file };
}

/** The questions of a data set written by writeDataset (the first `limit` records), each asked on its own. */
export function evalItems(dir: string, options: { limit?: number } = {}): EvalItem[] {
  const video = datasetMedia(dir) === 'video';
  const section = video ? 'video' : 'pictures';
  return readScenes(dir)
    .slice(0, options.limit)
    .flatMap((s) => s.questions.map((q) => ({ section, ...media(dir, s, video), record: s.id, question: q.question, answer: q.answer, type: q.type })));
}

/**
 * One conversation per record of a data set (the first `limit`): `turns` consecutive questions
 * of the record (fewer when it has fewer) from index id mod n, wrapping, so the same set always
 * gives the same conversations and every question type opens some and follows in others. A
 * record with a single question has nothing to follow it and gives none.
 */
export function followupConversations(dir: string, options: { limit?: number; turns?: number } = {}): FollowupConversation[] {
  const turns = options.turns ?? FOLLOWUP_TURNS;
  if (!Number.isSafeInteger(turns) || turns < 2) throw new InvalidOptionError(`a conversation needs at least 2 turns, got ${turns}`);
  const video = datasetMedia(dir) === 'video';
  const out: FollowupConversation[] = [];
  for (const s of readScenes(dir).slice(0, options.limit)) {
    const n = s.questions.length;
    if (n < 2) continue;
    const where = media(dir, s, video);
    // Consecutive questions from a place that moves with the record's id, so every type comes
    // first, second and third somewhere; training/answer.py asks the same ones.
    const asked = Array.from({ length: Math.min(turns, n) }, (_, k) => s.questions[(s.id + k) % n]);
    out.push({ ...where, record: s.id, items: asked.map((q, turn) => ({ section: 'followups', ...where, record: s.id, question: q.question, answer: q.answer, type: q.type, turn })) });
  }
  return out;
}

/** The model's input for an item or a conversation: a picture's path, or `{ video }`. */
export function evalInput(item: { image?: string; video?: string }): EvalInput {
  if (item.video !== undefined) return { video: item.video };
  if (item.image !== undefined) return item.image;
  throw new InvalidOptionError('an evaluation item needs an image or a video');
}

/** Whether a generated answer is the expected one (a word, or the scene's JSON): case, surrounding space and a final full stop do not count. */
export function isCorrect(text: string, expected: string): boolean {
  return text.trim().replace(/\.$/, '').toLowerCase() === expected;
}

const score = (correct: number, total: number): TypeScore => ({ correct, total, accuracy: total ? correct / total : 0 });

/** Overall and per-type accuracy of answers; `types` are the rows (default: the types present, in QUESTION_TYPES order). */
export function summarize(answers: readonly { type: QuestionType; correct: boolean }[], types?: readonly QuestionType[]): SectionScore {
  const rows = types ?? QUESTION_TYPES.filter((t) => answers.some((a) => a.type === t));
  const perType: SectionScore['perType'] = {};
  for (const t of rows) {
    const these = answers.filter((a) => a.type === t);
    perType[t] = score(these.filter((a) => a.correct).length, these.length);
  }
  return { overall: score(answers.filter((a) => a.correct).length, answers.length), perType };
}

/** The question types a section reports: a media section's own, follow-ups those of the media its conversations are about. */
function sectionTypes(section: EvalSection, items: readonly { image?: string; video?: string }[]): QuestionType[] {
  if (section === 'pictures') return [...PICTURE_QUESTION_TYPES];
  if (section === 'video') return [...VIDEO_QUESTION_TYPES];
  const asked = new Set<QuestionType>([...(items.some((i) => i.image !== undefined) ? PICTURE_QUESTION_TYPES : []), ...(items.some((i) => i.video !== undefined) ? VIDEO_QUESTION_TYPES : [])]);
  return QUESTION_TYPES.filter((t) => asked.has(t));
}

interface RunOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

/** Counts every question asked across the sections, for one progress bar. */
class Tally {
  done = 0;
  constructor(
    readonly total: number,
    private readonly options: RunOptions,
  ) {}
  check(): void {
    if (this.options.signal?.aborted) throw new AbortError('evaluation aborted');
  }
  step(item: EvalItem): void {
    this.options.onProgress?.({ task: 'eval', done: ++this.done, total: this.total, item: `${item.section} ${item.type}` });
  }
}

async function askEach(items: readonly EvalItem[], answer: Answerer, tally: Tally): Promise<EvalAnswer[]> {
  const out: EvalAnswer[] = [];
  for (const item of items) {
    tally.check();
    const got = await answer(evalInput(item), item.question);
    out.push({ ...item, ...got, correct: isCorrect(got.text, item.answer) });
    tally.step(item);
  }
  return out;
}

/**
 * Ask every question on its own and score the answers per question type (exact match of the
 * answer). The items are one section's (as evalItems gives them).
 */
export async function evaluate(items: readonly EvalItem[], answer: Answerer, options: RunOptions = {}): Promise<EvalReport> {
  const answers = await askEach(items, answer, new Tally(items.length, options));
  return { ...summarize(answers, sectionTypes(items[0]?.section ?? 'pictures', items)), answers };
}

/** A model's answers in each conversation, in order, through one chat per conversation. */
async function askConversations(conversations: readonly FollowupConversation[], model: EvalModel, tally: Tally): Promise<EvalAnswer[]> {
  const out: EvalAnswer[] = [];
  for (const c of conversations) {
    tally.check();
    const chat = model.chat(evalInput(c));
    try {
      for (const item of c.items) {
        tally.check();
        const got = await chat.ask(item.question);
        out.push({ ...item, ...got, correct: isCorrect(got.text, item.answer) });
        tally.step(item);
      }
    } finally {
      chat.dispose();
    }
  }
  return out;
}

/** Where a question was asked about (a picture's or a clip's path) with its words: what matches a follow-up to the same question asked first. */
const questionKey = (a: { image?: string; video?: string; question: string }) => `${a.video ?? a.image}\n${a.question}`;

/**
 * Run an evaluation's sections: pictures and video ask each question in a fresh conversation;
 * follow-ups ask each conversation's questions in one chat, so later questions follow the model's
 * own earlier answers, and score the second and later ones beside the same questions asked first
 * (which therefore need the pictures and video sections of the same records).
 */
export async function evaluateSections(
  sets: { pictures?: readonly EvalItem[]; video?: readonly EvalItem[]; followups?: readonly FollowupConversation[] },
  model: EvalModel,
  options: RunOptions = {},
): Promise<SectionsReport> {
  const followups = sets.followups ?? [];
  const total = (sets.pictures?.length ?? 0) + (sets.video?.length ?? 0) + followups.reduce((n, c) => n + c.items.length, 0);
  const tally = new Tally(total, options);
  const report: SectionsReport = { sections: {}, answers: [] };
  const first = new Map<string, EvalAnswer>();
  for (const section of ['pictures', 'video'] as const) {
    const items = sets[section];
    if (!items) continue;
    const answers = await askEach(items, (input, question) => model.ask(input, question), tally);
    for (const a of answers) first.set(questionKey(a), a);
    report.sections[section] = summarize(answers, sectionTypes(section, items));
    report.answers.push(...answers);
  }
  if (sets.followups) {
    const answers = await askConversations(followups, model, tally);
    report.answers.push(...answers);
    const later = answers.filter((a) => (a.turn ?? 0) > 0);
    const types = sectionTypes('followups', followups);
    const askedFirst = later.map((a) => first.get(questionKey(a)));
    const missing = askedFirst.findIndex((a) => a === undefined);
    if (missing >= 0) throw new InvalidOptionError(`the follow-up '${later[missing].question}' about ${later[missing].video ?? later[missing].image} was not asked first in the pictures or video section`);
    report.sections.followups = { ...summarize(later, types), askedFirst: summarize(askedFirst as EvalAnswer[], types) };
  }
  return report;
}
