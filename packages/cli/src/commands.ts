import * as fs from 'node:fs';
import * as readline from 'node:readline/promises';
import { Worker } from 'node:worker_threads';
import { AbortError, debugEnabled, FileError, fileSystemError, integerOption, InternalError, InvalidOptionError, LlavaMiniError, numberOption } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { webBackend } from '@llava-mini/core/web';
import {
  type AskOptions,
  type AskResult,
  checkDtype,
  checkTarget,
  type Conversation,
  type ConvertOptions,
  defaultModelDir,
  type DtypeName,
  LlavaMini,
  type Manifest,
  type NodeDeviceRequest,
  type NodeInput,
  partialDir,
  STAGES,
  type StageName,
} from '@llava-mini/pipeline/node';
import type { ConvertJob, ConvertReply } from './convert-worker.js';
import { ProgressView } from './progress.js';

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

export async function devicesCommand(): Promise<void> {
  for (const backend of [await nodeBackend(), await webBackend()]) {
    for (const d of await backend.probe()) {
      const status = d.available ? 'available' : `not available: ${d.reason}`;
      out(`${backend.name.padEnd(17)} ${d.device.padEnd(7)} ${status}\n`);
      if (!d.available && d.hint) out(`${''.padEnd(25)} ${d.hint}\n`);
    }
  }
}

export interface InitTinyFlags {
  seed: string;
  hd?: boolean;
  force?: boolean;
  compressorSize: string;
  imageSize: string;
}

export async function initTinyCommand(dir: string, flags: InitTinyFlags): Promise<void> {
  const hd = flags.hd === true;
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new FileError(dir, 'is a file, not a folder; choose another folder for the checkpoint');
  // Random weights written over a real checkpoint's would destroy it: only a new or empty folder, unless asked.
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0 && flags.force !== true) {
    throw new InvalidOptionError(`${dir} already exists and is not empty; pass --force to write the tiny checkpoint over what it holds`);
  }
  const seed = int(flags.seed, '--seed');
  const compressorSize = int(flags.compressorSize, '--compressor-size') * (hd ? 2 : 1);
  const imageSize = int(flags.imageSize, '--image-size');
  // A development tool, not a runtime dependency: @llava-mini/tiny is installed with the repository.
  const { writeTinyCheckpoint } = await import('@llava-mini/tiny').catch((err) => {
    throw new InvalidOptionError('init-tiny needs the @llava-mini/tiny package: run `npm install @llava-mini/tiny`', { cause: err });
  });
  const info = await writeTinyCheckpoint(dir, { seed, compressorSize, resolutionRatio: hd ? 2 : 1, imageSize });
  out(`wrote a random-weight tiny LLaVA-Mini checkpoint (${info.tensorNames.length} tensors, vocabulary ${info.vocabSize}) to ${info.dir}\n`);
}

export interface ConvertFlags {
  out: string;
  dtype: string;
  target: string;
  clip?: string;
  context?: string;
  blockSize?: string;
  force?: boolean;
  encoderDtype?: string;
  compressorDtype?: string;
  prefusionDtype?: string;
  llmDtype?: string;
}

export async function convertCommand(checkpoint: string, flags: ConvertFlags): Promise<void> {
  const stageDtypes: Partial<Record<StageName, DtypeName>> = {};
  for (const stage of STAGES) {
    const v = flags[`${stage}Dtype`];
    if (v !== undefined) stageDtypes[stage] = checkDtype(v, `--${stage}-dtype`);
  }
  const dtype = checkDtype(flags.dtype, '--dtype');
  if (flags.blockSize !== undefined && ![dtype, ...Object.values(stageDtypes)].some((d) => d === 'q8' || d === 'q4')) {
    throw new InvalidOptionError(`--block-size applies to q8 and q4 weights, and no stage is quantized (--dtype ${dtype})`);
  }
  const view = new ProgressView();
  const t0 = performance.now();
  try {
    const manifest = await convertInWorker(checkpoint, flags.out, {
      dtype,
      target: checkTarget(flags.target),
      stageDtypes,
      clipDir: flags.clip,
      contextLength: flags.context === undefined ? undefined : int(flags.context, '--context'),
      blockSize: flags.blockSize === undefined ? undefined : Number(flags.blockSize),
      force: flags.force === true,
    }, view);
    view.stop();
    const bytes = Object.values(manifest.stages).flatMap((s) => s.files).reduce((n, f) => n + f.bytes, 0);
    const dtypes = Object.entries(manifest.stages).map(([k, v]) => `${k} ${v.dtype}`).join(', ');
    out(`converted ${checkpoint} -> ${flags.out} (${(bytes / 1e6).toFixed(1)} MB; ${dtypes}; target ${manifest.target}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  } finally {
    view.stop();
  }
}

/**
 * Convert in a worker thread, so that Ctrl-C (SIGINT, SIGTERM) stops it at once, even inside a
 * graph's synchronous build, and the partial output folder is removed before the CLI exits.
 */
function convertInWorker(checkpoint: string, outDir: string, options: Omit<ConvertOptions, 'onProgress'>, view: ProgressView): Promise<Manifest> {
  const job: ConvertJob = { checkpoint, out: outDir, options };
  const worker = new Worker(new URL('./convert-worker.js', import.meta.url), { workerData: job });
  return new Promise<Manifest>((resolve, reject) => {
    let settled = false;
    let signal: NodeJS.Signals | undefined;
    const stop = (s: NodeJS.Signals) => {
      signal = s;
      void worker.terminate();
    };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const s of signals) process.on(s, stop);
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      for (const s of signals) process.removeListener(s, stop);
      fn();
    };
    worker.on('message', (m: ConvertReply) => {
      if (m.kind === 'progress') view.callback(m.event);
      else if (m.kind === 'done') finish(() => resolve(m.manifest));
      else finish(() => reject(m.code ? Object.assign(new LlavaMiniError(m.code, m.message), { stack: m.stack }) : new InternalError(`convert failed: ${m.message}`)));
    });
    worker.on('error', (err) => finish(() => reject(fileSystemError(err) ?? new InternalError(`convert failed: ${err.message}`, { cause: err }))));
    worker.on('exit', () => {
      if (signal) fs.rmSync(partialDir(outDir), { recursive: true, force: true });
      finish(() => reject(signal ? new AbortError(`convert was stopped (${signal}); ${outDir} was not written`) : new InternalError('convert stopped without a result')));
    });
  });
}

export interface AskFlags {
  model?: string;
  image?: string[];
  video?: string;
  prompt?: string;
  promptFile?: string;
  device: string;
  dtype?: string;
  maxNewTokens: string;
  temperature: string;
  topP?: string;
  topK?: string;
  seed?: string;
  jsonSchema?: string;
  maxFrames?: string;
  json?: boolean;
}

function visualInput(flags: Pick<AskFlags, 'image' | 'video'>): NodeInput | undefined {
  if (flags.video && flags.image?.length) throw new InvalidOptionError('give --image or --video, not both');
  if (flags.video) return { video: flags.video };
  if (!flags.image?.length) return undefined;
  return flags.image.length === 1 ? flags.image[0] : flags.image;
}

export async function load(flags: Pick<AskFlags, 'model' | 'device' | 'dtype' | 'maxFrames'>, view: ProgressView): Promise<LlavaMini> {
  return LlavaMini.fromPretrained(flags.model ?? defaultModelDir(), {
    device: flags.device as NodeDeviceRequest,
    dtype: flags.dtype === undefined ? undefined : checkDtype(flags.dtype, '--dtype'),
    maxFrames: flags.maxFrames === undefined ? undefined : int(flags.maxFrames, '--max-frames'),
    // Which devices 'auto' passed over is noise on a CPU machine; LLAVA_MINI_DEBUG=1 shows it.
    logger: debugEnabled() ? (m) => err(`${m}\n`) : undefined,
    onProgress: view.callback,
  });
}

export function generationOptions(flags: AskFlags, view: ProgressView): AskOptions {
  return {
    maxNewTokens: int(flags.maxNewTokens, '--max-new-tokens'),
    temperature: num(flags.temperature, '--temperature'),
    topP: flags.topP === undefined ? undefined : num(flags.topP, '--top-p'),
    topK: flags.topK === undefined ? undefined : int(flags.topK, '--top-k'),
    seed: flags.seed === undefined ? undefined : int(flags.seed, '--seed'),
    responseFormat: flags.jsonSchema === undefined ? undefined : { type: 'json_schema', schema: readJsonSchema(flags.jsonSchema) },
    onProgress: view.callback,
  };
}

/** --json-schema FILE: a JSON Schema object, read before the model loads. */
function readJsonSchema(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw fileSystemError(err) ?? new FileError(file, `cannot be read: ${(err as Error).message}`, { cause: err });
  }
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (err) {
    throw new InvalidOptionError(`--json-schema ${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new InvalidOptionError(`--json-schema ${file} must hold a JSON Schema object`);
  return schema as Record<string, unknown>;
}

/** The question: --prompt, or --prompt-file (a path, or `-` for stdin) for prompts too long for a command line. */
function readPrompt(flags: Pick<AskFlags, 'prompt' | 'promptFile'>): string {
  if (flags.prompt !== undefined && flags.promptFile !== undefined) throw new InvalidOptionError('give --prompt or --prompt-file, not both');
  if (flags.promptFile === undefined) {
    if (flags.prompt === undefined) throw new InvalidOptionError('give the question with --prompt TEXT or --prompt-file FILE (- reads stdin)');
    return flags.prompt;
  }
  const from = flags.promptFile === '-' ? 'stdin' : flags.promptFile;
  let text: string;
  try {
    text = fs.readFileSync(flags.promptFile === '-' ? 0 : flags.promptFile, 'utf8');
  } catch (err) {
    throw fileSystemError(err) ?? new FileError(from, `cannot be read: ${(err as Error).message}`, { cause: err });
  }
  // A file's final newline is not part of the question.
  text = text.replace(/\r?\n$/, '');
  if (!text.trim()) throw new InvalidOptionError(`the prompt from ${from} is empty`);
  return text;
}

export async function askCommand(flags: AskFlags): Promise<void> {
  const prompt = readPrompt(flags);
  const input = visualInput(flags);
  const view = new ProgressView(!flags.json && process.stderr.isTTY === true);
  const options = generationOptions(flags, view);
  const model = await load(flags, view);
  const stop = stopOnSignal();
  try {
    const answer = model.ask(input, prompt, { ...options, signal: stop.signal });
    if (flags.json) {
      const r = await answer.done();
      view.stop();
      out(`${JSON.stringify({ promptTokenIds: r.promptTokenIds, tokenIds: r.ids, text: r.text, finishReason: r.finishReason, timings: r.timings })}\n`);
      return;
    }
    let first = true;
    for await (const token of answer) {
      if (first) view.stop();
      first = false;
      out(token.text);
    }
    out('\n');
    printTimings(await answer.done());
  } finally {
    stop.done();
    view.stop();
    await model.dispose();
  }
}

/**
 * Ctrl-C (SIGINT, SIGTERM, SIGHUP) while an answer runs stops it through its signal, so ffmpeg is
 * stopped and its temporary files removed before the CLI exits (130); a second one exits at once.
 */
function stopOnSignal(): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const stop = () => (controller.signal.aborted ? process.exit(130) : controller.abort());
  for (const s of signals) process.on(s, stop);
  return { signal: controller.signal, done: () => signals.forEach((s) => process.removeListener(s, stop)) };
}

function printTimings(r: AskResult): void {
  const t = r.timings;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  err(
    [
      `prompt ${r.promptTokenIds.length} tokens -> LLM input ${r.llmInputTokens} rows; generated ${r.ids.length - r.headerTokens} tokens (${r.finishReason})`,
      `input ${ms(t.inputMs)} | encoder ${ms(t.encoderMs)} | compressor ${ms(t.compressorMs)} | embed ${ms(t.embedMs)} | prefusion ${ms(t.prefusionMs)}`,
      `time to first token ${ms(t.timeToFirstTokenMs)} | prefill ${t.prefillTokensPerSecond.toFixed(1)} tok/s | decode ${t.decodeTokensPerSecond.toFixed(1)} tok/s | total ${ms(t.totalMs)}`,
    ].join('\n') + '\n',
  );
}

export async function chatCommand(flags: AskFlags): Promise<void> {
  const view = new ProgressView();
  const options = generationOptions(flags, view);
  const model = await load(flags, view);
  view.stop();
  const conversation: Conversation<NodeInput> = model.chat(visualInput(flags));
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  out('Ask about the input; an empty line or Ctrl-D ends the chat.\n> ');
  try {
    // Iterating the lines (rather than rl.question) keeps piped input that arrives while a turn runs.
    for await (const question of rl) {
      if (!question.trim()) break;
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      try {
        for await (const token of conversation.ask(question, { ...options, signal: controller.signal })) out(token.text);
      } catch (e) {
        // Ctrl-C stops the answer, not the chat.
        if (!(e instanceof AbortError)) throw e;
        out(' [stopped]');
      } finally {
        process.removeListener('SIGINT', stop);
      }
      out('\n> ');
    }
    out('\n');
  } finally {
    rl.close();
    await model.dispose();
  }
}

const int = (v: string, flag: string): number => integerOption(v, flag);
const num = (v: string, flag: string): number => numberOption(v, flag);
