import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidOptionError, errorMessage, nestedDeeperThan } from '@llava-mini/core';
import type { AskOptions, NodeInput } from '@llava-mini/pipeline/node';

/**
 * One line of a jobs file, as written by the user:
 *   {"id": "a1", "image": "photos/1.jpg", "question": "What is in this picture?"}
 * `image` (one), `images` (several, their vision tokens in order) or `video`; `question` (one answer)
 * or `questions` (asked in turn in one conversation, one answer each). `metadata` is echoed back.
 * Pictures are file paths (relative ones against the jobs file's folder), file: URLs, or for
 * images base64 data: URLs. `json_schema` (a JSON Schema object) makes every answer of the job JSON
 * that the schema allows.
 */
export interface JobLine {
  id: string | number;
  image?: string;
  images?: string[];
  video?: string;
  question?: string;
  questions?: string[];
  json_schema?: Record<string, unknown>;
  metadata?: unknown;
}

/** A job checked and ready to run. */
export interface Job {
  id: string | number;
  input: NodeInput;
  questions: string[];
  /** `questions` was given: the result carries `answers`, not `answer`. */
  several: boolean;
  /** From the line's json_schema: what its answers must be. */
  responseFormat?: AskOptions['responseFormat'];
  metadata?: unknown;
}

export type JobId = string | number;

const FIELDS = new Set(['id', 'image', 'images', 'video', 'question', 'questions', 'json_schema', 'metadata']);
const MAX_ID_LENGTH = 256;
/** Deepest nesting of a job line (a job needs 3 levels; metadata gets the rest). */
const MAX_LINE_DEPTH = 100;

/** The key results are matched by: ids compare as strings, so `17` and `"17"` are one job. */
export const jobKey = (id: JobId): string => String(id);

function isJobId(v: unknown): v is JobId {
  return (typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_LENGTH) || (typeof v === 'number' && Number.isSafeInteger(v));
}

/** Why a parsed line has no usable id, if it has none (without an id no result can name the job). */
function idProblem(raw: unknown): string | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'is not a JSON object';
  const id = (raw as { id?: unknown }).id;
  if (id === undefined) return 'has no "id"';
  if (!isJobId(id)) return `"id" must be a non-empty string (at most ${MAX_ID_LENGTH} characters) or an integer`;
  return undefined;
}

export interface JobsFile {
  /** Folder relative paths in the lines are resolved against. */
  baseDir: string;
  lines: { line: number; raw: JobLine }[];
}

/**
 * Read a JSONL jobs file. A line that is not JSON, has no usable id or repeats an id stops
 * everything before any work (no result could be written for it); anything else wrong with a line
 * fails that job alone when it runs.
 */
export async function readJobsFile(file: string): Promise<JobsFile> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    throw new InvalidOptionError(`cannot read the jobs file ${file}: ${errorMessage(e)}`, { cause: e });
  }
  const lines: JobsFile['lines'] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((s, i) => {
    if (!s.trim()) return;
    const where = `${file}:${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(s);
    } catch (e) {
      throw new InvalidOptionError(`${where}: not a JSON line (${errorMessage(e)})`);
    }
    // A result echoes the line's metadata, and a queue hands the line to Redis: both recurse.
    if (nestedDeeperThan(raw, MAX_LINE_DEPTH)) throw new InvalidOptionError(`${where}: nests arrays and objects more than ${MAX_LINE_DEPTH} levels deep`);
    const problem = idProblem(raw);
    if (problem) throw new InvalidOptionError(`${where}: ${problem}`);
    const id = (raw as JobLine).id;
    const key = jobKey(id);
    const first = seen.get(key);
    if (first !== undefined) throw new InvalidOptionError(`${where}: id ${JSON.stringify(id)} is already used on line ${first}`);
    seen.set(key, i + 1);
    lines.push({ line: i + 1, raw: raw as JobLine });
  });
  return { baseDir: path.dirname(path.resolve(file)), lines };
}

/**
 * The line with its relative paths made absolute against `baseDir` (so a job can travel to a worker
 * on another machine that mounts the same files). Values of the wrong type are left for `parseJob`
 * to refuse.
 */
export function resolvePaths(raw: JobLine, baseDir: string): JobLine {
  // data: and file: URLs name no relative path; anything else is a path.
  const abs = (p: unknown) => (typeof p === 'string' && p !== '' && !/^(data|file):/i.test(p) ? path.resolve(baseDir, p) : p);
  const out: Record<string, unknown> = { ...raw };
  for (const k of ['image', 'video'] as const) if (k in raw) out[k] = abs(raw[k]);
  if (Array.isArray(raw.images)) out.images = raw.images.map(abs);
  return out as unknown as JobLine;
}

const str = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';

/** Check a line's fields; paths must already be absolute (resolvePaths). Throws InvalidOptionError naming the field. */
export function parseJob(raw: JobLine): Job {
  for (const k of Object.keys(raw)) {
    if (!FIELDS.has(k)) throw new InvalidOptionError(`unknown field "${k}" (a job has ${[...FIELDS].join(', ')})`);
  }
  const given = (['image', 'images', 'video'] as const).filter((k) => raw[k] !== undefined);
  if (given.length !== 1) throw new InvalidOptionError(`a job needs exactly one of "image", "images" or "video", got ${given.length ? given.join(' and ') : 'none'}`);
  let input: NodeInput;
  const file = (v: unknown, field: string): string => {
    if (!str(v)) throw new InvalidOptionError(`"${field}" must be a file path`);
    // Remote fetches are a server's decision to make (SSRF); a batch reads the files it was given,
    // or pictures carried in the line itself (data: URLs: no shared storage needed for workers).
    const scheme = /^(data|https?|[a-z][a-z0-9+.-]*(?=:\/\/)):/i.exec(v)?.[1].toLowerCase();
    if (scheme === 'data' && field !== 'video') return v;
    if (scheme && scheme !== 'file') throw new InvalidOptionError(`"${field}" must be a file path${field === 'video' ? '' : ' or a data: URL'}; ${scheme}: URLs are not fetched by batch jobs`);
    return v;
  };
  if (raw.image !== undefined) input = file(raw.image, 'image');
  else if (raw.video !== undefined) input = { video: file(raw.video, 'video') };
  else {
    if (!Array.isArray(raw.images) || raw.images.length === 0) throw new InvalidOptionError('"images" must be a non-empty array of file paths');
    input = raw.images.map((p, i) => file(p, `images[${i}]`));
  }
  if ((raw.question === undefined) === (raw.questions === undefined)) throw new InvalidOptionError('a job needs exactly one of "question" or "questions"');
  let questions: string[];
  if (raw.question !== undefined) {
    if (!str(raw.question)) throw new InvalidOptionError('"question" must be a non-empty string');
    questions = [raw.question];
  } else {
    if (!Array.isArray(raw.questions) || raw.questions.length === 0 || !raw.questions.every(str)) throw new InvalidOptionError('"questions" must be a non-empty array of non-empty strings');
    questions = raw.questions;
  }
  const job: Job = { id: raw.id, input, questions, several: raw.questions !== undefined };
  if (raw.json_schema !== undefined) {
    const schema = raw.json_schema;
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new InvalidOptionError('"json_schema" must be a JSON Schema object');
    job.responseFormat = { type: 'json_schema', schema };
  }
  if (raw.metadata !== undefined) job.metadata = raw.metadata;
  return job;
}
