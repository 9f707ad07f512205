// What a turn answers with, in one vocabulary: the result, its choices and its timings per stage,
// for the conversation that makes them and for every caller that reports them (completions'
// usage, the CLI's --json, batch results).
import type { FinishReason, GenerationStats } from '@llava-mini/llm';
import type { PictureTimings } from './vision.js';

/** One of several answers to one prompt (AskOptions.n). */
export type AskChoice = Pick<AskResult, 'ids' | 'headerTokens' | 'text' | 'finishReason'>;

/** Milliseconds spent in each stage of one turn, as each stage measured itself. */
export interface StageTimings extends PictureTimings {
  /** The prompt's text embeddings (pre-fusion's text input). */
  embedMs: number;
  /** Pre-fusion's own work, not the wait for streamed video frames. */
  prefusionMs: number;
}

export interface AskTimings extends StageTimings {
  /** From the call until the first generated token. */
  timeToFirstTokenMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  totalMs: number;
}

/** One turn's answer. Its prompt tokens are `llmInputTokens`; its time to first token is in `timings`. */
export interface AskResult {
  /** Generated ids (a consumed assistant header included; the stop id not). */
  ids: number[];
  /** How many of `ids` are the assistant header the model wrote (consumed outside the maxNewTokens budget); the rest are the answer's tokens. */
  headerTokens: number;
  /** The visible text, trimmed as the reference does. */
  text: string;
  finishReason: FinishReason;
  /**
   * @deprecated The LLM stage's own figures, kept for code written against them: its `promptTokens`
   * is `llmInputTokens`, its `generatedTokens` is `ids.length`, its tokens per second are in
   * `timings`, and its `timeToFirstTokenMs` counts from the start of prefill only (the turn's, from
   * the call, is `timings.timeToFirstTokenMs`).
   */
  stats: GenerationStats;
  /**
   * The prompt ids this turn ran, as the tokenizer step built them: the whole prompt with
   * IMAGE_TOKEN_INDEX (-200) at the placeholder on a first turn, the new text on a follow-up.
   */
  promptTokenIds: number[];
  /** Rows the LLM received for this turn (text with vision tokens spliced in): the turn's prompt tokens. */
  llmInputTokens: number;
  timings: AskTimings;
  /** With AskOptions.n > 1: every answer, the first being this result's own. */
  choices?: AskChoice[];
}

/** No time spent in any stage (a turn without pictures, or whose pictures were ready). */
export const NO_TIME: StageTimings = { inputMs: 0, encoderMs: 0, compressorMs: 0, embedMs: 0, prefusionMs: 0 };
/** Two sets of stage timings added up (a rebuilt cache's and the turn's own). */
export const addTimings = (a: StageTimings, b: StageTimings): StageTimings => ({
  inputMs: a.inputMs + b.inputMs,
  encoderMs: a.encoderMs + b.encoderMs,
  compressorMs: a.compressorMs + b.compressorMs,
  embedMs: a.embedMs + b.embedMs,
  prefusionMs: a.prefusionMs + b.prefusionMs,
});
