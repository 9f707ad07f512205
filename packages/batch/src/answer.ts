import { AbortError, LlavaMiniError, errorMessage, now } from '@llava-mini/core';
import type { AskOptions, AskResult } from '@llava-mini/pipeline';
import type { Job, JobId } from './jobs.js';

export interface Usage {
  /** Rows the LLM read over the job's turns (text with the vision tokens spliced in). */
  promptTokens: number;
  /** The answers' tokens (what maxNewTokens counts: not the assistant header the model writes). */
  completionTokens: number;
  totalTokens: number;
}

export interface JobTimings {
  inputMs: number;
  encoderMs: number;
  compressorMs: number;
  prefusionMs: number;
  /** From the start of the job to its first generated token. */
  timeToFirstTokenMs: number;
  /** The job's wall time, every question included. */
  totalMs: number;
}

/** What a job's result line carries besides its id; the same in local and queued mode. */
export type Answered = ({ answer: string; finishReason: string } | { answers: string[]; finishReasons: string[] }) & {
  usage: Usage;
  timings: JobTimings;
};

export interface JobError {
  /** A LlavaMiniError code (IMAGE, VIDEO, PROMPT_TOO_LONG, INVALID_OPTION, ...), or INTERNAL / STALLED. */
  code: string;
  message: string;
}

/** One line of a results file. Queued mode adds which worker ran it and how many attempts it took. */
export type ResultLine = { id: JobId; metadata?: unknown; worker?: string; attempts?: number } & (Answered | { error: JobError });

/** The codes of errors that a retry cannot fix: the job itself is wrong. */
export const BAD_INPUT_CODES: ReadonlySet<string> = new Set(['INVALID_OPTION', 'IMAGE', 'VIDEO', 'PROMPT_TOO_LONG']);

export function toJobError(e: unknown): JobError {
  if (e instanceof LlavaMiniError) return { code: e.code, message: e.message };
  return { code: 'INTERNAL', message: errorMessage(e) };
}

/** What a batch needs of a model (a `LlavaMini` is one): a conversation about an input, asked in turns. */
export interface BatchModel {
  chat(input: unknown): {
    ask(question: string, options?: AskOptions): { done(): Promise<AskResult> };
  };
}

/**
 * Ask a job's questions in one conversation about its input (a follow-up reuses the KV cache and the
 * pictures' features) and gather answers, usage and timings. Throws what the model throws.
 */
export async function answerJob(model: BatchModel, job: Job, options: AskOptions = {}): Promise<Answered> {
  const started = now();
  const conversation = model.chat(job.input);
  const results: AskResult[] = [];
  try {
    for (const question of job.questions) {
      if (options.signal?.aborted) throw new AbortError('the batch was stopped');
      results.push(await conversation.ask(question, job.responseFormat ? { ...options, responseFormat: job.responseFormat } : options).done());
    }
  } finally {
    // Conversations own their KV cache and features (issue 9): free them now rather than at GC.
    await (conversation as { dispose?: () => unknown }).dispose?.();
  }
  const sum = (f: (r: AskResult) => number) => results.reduce((n, r) => n + f(r), 0);
  const promptTokens = sum((r) => r.llmInputTokens);
  const completionTokens = sum((r) => r.ids.length - r.headerTokens);
  const usage = { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
  const timings: JobTimings = {
    inputMs: sum((r) => r.timings.inputMs),
    encoderMs: sum((r) => r.timings.encoderMs),
    compressorMs: sum((r) => r.timings.compressorMs),
    prefusionMs: sum((r) => r.timings.prefusionMs),
    timeToFirstTokenMs: results[0].timings.timeToFirstTokenMs,
    totalMs: now() - started,
  };
  return job.several
    ? { answers: results.map((r) => r.text), finishReasons: results.map((r) => r.finishReason), usage, timings }
    : { answer: results[0].text, finishReason: results[0].finishReason, usage, timings };
}
