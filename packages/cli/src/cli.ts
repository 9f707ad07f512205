#!/usr/bin/env node
// The `llava-mini` command: devices, init-tiny, convert, ask, chat, watch, eval, serve (over
// @llava-mini/server), batch and worker (over @llava-mini/batch). Every failure prints as one line
// `llava-mini: CODE: message` and exits 1 (130 when stopped by a signal); usage errors exit 2.
// LLAVA_MINI_DEBUG=1 adds the stack trace. Only the flags are defined here: each command's code is
// imported when it runs, so `--help` loads neither the runtime nor the server or queue packages.
import { Command, CommanderError, Option } from 'commander';
import { AbortError, asLlavaMiniError, debugEnabled } from '@llava-mini/core';
import { deviceOption, dtypeOption } from './flags.js';
import { loadOptional, MissingPackageError } from './optional.js';
import { registerServe } from './serve.js';

type Commands = typeof import('./commands.js');

/** A commander action that imports ./commands.js when the command runs and hands it the arguments. */
const run =
  <K extends keyof Commands>(name: K) =>
  async (...args: unknown[]): Promise<void> =>
    ((await import('./commands.js'))[name] as (...a: unknown[]) => Promise<void>)(...args);

const program = new Command('llava-mini')
  .description('LLaVA-Mini: answer questions about images and videos with one vision token per picture')
  .exitOverride()
  .showHelpAfterError();

program.command('devices').description('list the devices that can run here, and how to enable the others').action(run('devicesCommand'));

program
  .command('init-tiny <dir>')
  .description('write a seeded random-weight tiny LLaVA-Mini checkpoint (Hugging Face layout) for trying things out')
  .option('--seed <n>', 'random seed', '0')
  .option('--hd', 'high-resolution variant (resolution_ratio 2, compressor size doubled)')
  .option('--compressor-size <C>', 'C: C*C vision tokens per image', '1')
  .option('--image-size <px>', 'CLIP input size', '336')
  .option('--force', 'write into a folder that is not empty (its weights are replaced)')
  .action(run('initTinyCommand'));


program
  .command('convert <checkpoint>')
  .description('convert a Hugging Face LLaVA-Mini checkpoint folder into ONNX models for every stage')
  .requiredOption('--out <dir>', 'output folder (written atomically)')
  .addOption(dtypeOption('--dtype <dtype>', 'weight type of every stage').default('fp32'))
  .addOption(new Option('--target <target>', 'runtime the graphs are for').choices(['cpu', 'cuda', 'webgpu']).default('cpu'))
  .addOption(dtypeOption('--encoder-dtype <dtype>', 'override for the vision encoder (default: fp32, or fp16 for GPU targets)'))
  .addOption(dtypeOption('--compressor-dtype <dtype>', 'override for the compressor'))
  .addOption(dtypeOption('--prefusion-dtype <dtype>', 'override for the pre-fusion layers'))
  .addOption(dtypeOption('--llm-dtype <dtype>', 'override for the LLM'))
  .option('--clip <dir>', 'a CLIP vision checkpoint folder, when the checkpoint has no CLIP weights')
  .option('--context <tokens>', 'LLM context window (default min(max_position_embeddings, 8192))')
  .addOption(new Option('--block-size <n>', "q8/q4 weights per scale; 32 is llama.cpp's Q8_0 / Q4_0, 128 runs a prompt's matrix products about 1.3x faster on a CPU, with a little more error (bench/RESULTS.md, \"Long contexts\")").choices(['16', '32', '64', '128', '256']))
  .option('--force', 'replace the output folder if it exists')
  .action(run('convertCommand'));

/** The model and how it answers: every command that asks questions. */
const withAnswerOptions = (cmd: Command) =>
  cmd
    .option('--model <dir>', 'a converted model folder, a small Hugging Face checkpoint (converted in memory), or a hub id org/name[@revision] (downloaded, converted once, cached); default: the bundled shapes model (models/llava-mini-shapes)')
    .addOption(deviceOption('where to run', 'auto'))
    .addOption(dtypeOption('--dtype <dtype>', 'weight type (must match a converted model)'))
    .option('--max-new-tokens <n>', 'most tokens to generate', '512')
    .option('--temperature <t>', '0 = greedy, as the reference', '0')
    .option('--top-p <p>', 'nucleus sampling')
    .option('--top-k <k>', 'top-k sampling')
    .option('--seed <n>', 'seed for reproducible sampling')
    .option('--json-schema <file>', 'answer with JSON this JSON Schema allows (enforced while decoding)');

const withModelOptions = (cmd: Command) =>
  withAnswerOptions(cmd)
    .option('--image <path...>', 'image file(s) or URL(s)')
    .option('--video <path>', 'a video file (one frame per second)')
    .option('--max-frames <n>', 'most video frames');

withModelOptions(program.command('ask').description('answer one question about an image or video, streaming the answer'))
  .option('--prompt <text>', 'the question')
  .option('--prompt-file <file>', 'read the question from a file (- for stdin), for prompts too long for a command line')
  .option('--json', 'print one JSON object: promptTokenIds, tokenIds, text, timings')
  .action(run('askCommand'));

withModelOptions(program.command('chat').description('an interactive conversation about an image or video')).action(run('chatCommand'));

withAnswerOptions(program.command('watch').description('watch a live stream (a file played in real time, a stream URL, a camera) and answer questions from stdin about its last seconds'))
  .requiredOption('--video <source>', 'a video file, a stream URL (http(s), rtsp, rtmp, srt, udp, tcp) or a camera device (/dev/videoN)')
  .option('--window <duration>', 'how much of the stream a question sees: seconds, or 90s, 2m, 1h', '60s')
  .option('--fps <n>', 'frames kept per second of stream', '1')
  .option('--max-window-bytes <n>', 'most bytes the window\'s frames may hold; past it the oldest leave early (default 2 GiB)')
  .option('--no-realtime', 'read a file as fast as it decodes (every sampled frame kept) rather than at its own pace')
  .option('--json', 'print one JSON line per answer: question, text, window, stats')
  .action(async (flags) => (await import('./watch.js')).watchCommand(flags));

// batch and worker parse their own options (./batch), over @llava-mini/batch (BullMQ, Redis).
for (const [name, description] of [
  ['batch', 'answer a JSONL of image/video jobs, here (resumable) or on a Redis queue (@llava-mini/batch)'],
  ['worker', 'answer the jobs of a Redis queue, on any number of machines (@llava-mini/batch)'],
]) {
  program
    .command(name)
    .description(description)
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[options...]')
    .action(async (argv: string[]) => (await loadOptional('@llava-mini/batch', name, () => import('./batch/index.js'))).main(name, argv));
}

registerServe(program);

const cache = program.command('cache').description('what the hub cache and the converted-model cache hold (HF_HUB_CACHE, LLAVA_MINI_CACHE)');
cache
  .command('ls')
  .description('list the downloaded repositories and their conversions')
  .option('--json', 'print them as JSON')
  .action(async (flags) => (await import('./cache.js')).cacheLsCommand(flags));
cache
  .command('rm <repo>')
  .description("remove a repository's downloads and conversions")
  .action(async (repo: string) => (await import('./cache.js')).cacheRmCommand(repo));

program
  .command('eval')
  .description("accuracy per question type on held-out shapes-world pictures, clips and follow-ups (the demo model's world)")
  .option('--model <dir>', 'model folder (default: the bundled shapes model)')
  .option('--data <dir>', 'pictures written by llava-mini-shapes (default: write --count from --seed)')
  .option('--video-data <dir>', 'clips written by llava-mini-shapes --clips (default: write --video-count from --seed + 1)')
  .option('--count <n>', 'pictures in the generated data set', '100')
  .option('--video-count <n>', 'clips in the generated data set (default: --count)')
  .option('--seed <n>', 'seed of the generated pictures; clips use seed + 1 (training used 1, validation 2)', '1000')
  .option('--limit <n>', 'only the first n pictures and the first n clips')
  .option('--no-video', 'skip the clips (video questions and follow-ups about clips)')
  .option('--no-followups', 'skip the follow-ups (a conversation of 3 questions about each picture and clip)')
  .addOption(deviceOption('where to run', 'auto'))
  .addOption(dtypeOption('--dtype <dtype>', 'weight type (must match a converted model)'))
  .option('--json', 'print the result as JSON')
  .option('--answers <file>', 'also write every question with its answer (JSON lines)')
  .action(async (flags) => (await loadOptional('@llava-mini/shapes', 'eval', () => import('./eval.js'))).evalCommand(flags));

function fail(e: unknown): never {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof MissingPackageError) {
    process.stderr.write(`llava-mini: ${e.message}\n`);
    process.exit(1);
  }
  const command = program.args[0] ?? 'llava-mini';
  const err = asLlavaMiniError(e, command);
  const detail = debugEnabled() ? `\n${(err.cause as Error | undefined)?.stack ?? err.stack}` : '';
  process.stderr.write(`llava-mini: ${err.code}: ${err.message.split('\n')[0]}${detail}\n`);
  process.exit(err instanceof AbortError ? 130 : 1);
}

// A reader that stops early (`llava-mini ask ... | head -1`) is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' ? process.exit(0) : fail(e)));
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e);
}
