// What every fuzz target shares: its seed corpus (fuzz/corpus/<target>/, replayed first on every run),
// byte-level mutations of those seeds, a time budget, and the oracle: the code under test returns, or
// throws a LlavaMiniError (a typed error with a `code`) whose message is one bounded line. Anything
// else (a TypeError, a RangeError, a hang, a message that dumps its input) is a finding.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LlavaMiniError } from '@llava-mini/core';
import fc from 'fast-check';
import { expect } from 'vitest';

export const CORPUS = path.join(__dirname, 'corpus');
/** Longest error message accepted: enough to name a field and its value, not to quote an input. */
export const MAX_MESSAGE = 2000;
/** One execution past this is reported as a hang (generous: CI machines are shared and slow). */
const HANG_MS = 10_000;

/** Seconds each target runs: FUZZ_SECONDS, else 2 (the CI budget). */
export function budgetSeconds(): number {
  const s = Number(process.env.FUZZ_SECONDS ?? 2);
  if (!(s > 0)) throw new Error(`FUZZ_SECONDS must be a positive number of seconds, got ${process.env.FUZZ_SECONDS}`);
  return s;
}

/** The committed seeds of a target, as bytes, sorted by file name. */
export function seeds(target: string): Uint8Array[] {
  const dir = path.join(CORPUS, target);
  return fs
    .readdirSync(dir)
    .sort()
    .map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
}

const edit = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x2c, 0x7b, 0x5d, 0x30, 0x2d) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 32 }), times: fc.integer({ min: 2, max: 64 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function apply(seed: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Buffer.from(seed);
  for (const e of edits) {
    const at = b.length ? e.at % (b.length + 1) : 0;
    if (e.kind === 'flip' && at < b.length) b[at] ^= 1 << e.bit;
    else if (e.kind === 'set' && at < b.length) b[at] = e.byte;
    else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
    else if (e.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.length)]);
    else if (e.kind === 'repeat') b = Buffer.concat([b.subarray(0, at), ...Array(e.times).fill(b.subarray(at, at + e.length)), b.subarray(at)]);
    else if (e.kind === 'truncate') b = b.subarray(0, at);
  }
  return new Uint8Array(b);
}

/** A target's seeds, each as it is or with up to 8 byte-level edits (flips, interesting bytes, insertions, cuts, repeats). */
export function mutatedSeeds(target: string): fc.Arbitrary<Uint8Array> {
  const all = seeds(target);
  return fc.tuple(fc.nat(all.length - 1), fc.array(edit, { maxLength: 8 })).map(([i, edits]) => apply(all[i], edits));
}

export interface FuzzReport {
  target: string;
  executions: number;
  /** Distinct outcomes (success, or the error code with its message's digits and quoted parts blanked). */
  outcomes: number;
}

function outcomeOf(err: unknown): string {
  if (err === undefined) return 'ok';
  const e = err as LlavaMiniError;
  return `${e.code}: ${e.message.replace(/'[^']*'|"[^"]*"|\d+/g, '_')}`;
}

/** Asserts the oracle for one outcome; returns the outcome's class. */
function check(err: unknown): string {
  if (err === undefined) return 'ok';
  if (!(err instanceof LlavaMiniError)) {
    const where = err instanceof Error ? (err.stack ?? '').split('\n').find((l) => l.includes(' at ')) : undefined;
    throw new Error(`untyped error: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}${where ? ` (${where.trim()})` : ''}`, { cause: err });
  }
  if (/[\r\n]/.test(err.message)) throw new Error(`error message of more than one line: ${JSON.stringify(err.message.slice(0, 300))}`);
  if (err.message.length > MAX_MESSAGE) throw new Error(`error message of ${err.message.length} characters: ${err.message.slice(0, 300)}...`);
  return outcomeOf(err);
}

/**
 * Runs `run` on values from `arb` for the budget (the corpus's seeds first, unchanged), asserting the
 * oracle on each; a failure is shrunk by fast-check and reported with the input that caused it.
 */
export async function fuzz<T>(target: string, arb: fc.Arbitrary<T>, run: (input: T) => unknown, examples: T[] = []): Promise<FuzzReport> {
  const outcomes = new Set<string>();
  let executions = 0;
  const property = fc.asyncProperty(arb, async (input) => {
    executions++;
    const t0 = performance.now();
    let err: unknown;
    try {
      await run(input);
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    if (ms > HANG_MS) throw new Error(`one execution took ${Math.round(ms)} ms`);
    outcomes.add(check(err));
  });
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  const details = await fc.check(property, {
    examples: examples.map((e) => [e] as [T]),
    numRuns: Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: budgetSeconds() * 1000,
    markInterruptAsFailure: false,
    seed,
  });
  const report = { target, executions, outcomes: outcomes.size };
  if (details.failed) {
    const input = details.counterexample?.[0];
    const shown = input instanceof Uint8Array ? `bytes (base64) ${Buffer.from(input).toString('base64')}` : describe(input);
    expect.fail(`${target}: ${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}\n  input: ${shown}\n  replay: FUZZ_SEED=${details.seed} (path ${details.counterexamplePath})`);
  }
  record(report);
  return report;
}

/** An input as JSON, cut short; one nested too deep to stringify is named as such. */
function describe(input: unknown): string {
  try {
    return String(JSON.stringify(input)).slice(0, 2000);
  } catch {
    return 'a value nested too deep to print (replay it with the seed)';
  }
}

/** Appends the run's figures to FUZZ_REPORT (a JSON-lines file) when set. */
function record(report: FuzzReport): void {
  const file = process.env.FUZZ_REPORT;
  if (file) fs.appendFileSync(file, `${JSON.stringify({ ...report, seconds: budgetSeconds() })}\n`);
  console.log(`fuzz ${report.target}: ${report.executions} executions, ${report.outcomes} distinct outcomes`);
}
