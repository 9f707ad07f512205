// `llava-mini watch`: a live stream runs while questions come in on stdin; each answer is about the
// stream's window at the moment it is asked, printed with the window it saw.
import * as readline from 'node:readline/promises';
import { AbortError, InvalidOptionError, integerOption, numberOption } from '@llava-mini/core';
import { type LiveAskResult, type LiveStats, type LiveWindow, liveVideoFrames } from '@llava-mini/pipeline/node';
import { type AskFlags, generationOptions, load } from './commands.js';
import { ProgressView } from './progress.js';

export interface WatchFlags extends Omit<AskFlags, 'image' | 'maxFrames' | 'prompt' | 'promptFile'> {
  video: string;
  window: string;
  fps: string;
  maxWindowBytes?: string;
  realtime: boolean;
}

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

/** `90`, `90s`, `2m`, `1.5h` as seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'] : Number.NaN;
  if (!(seconds > 0)) throw new InvalidOptionError(`${flag} must be a duration > 0 such as 60, 90s, 2m or 1h, got '${text}'`);
  return seconds;
}

const clock = (t: number) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, '0')}`;
const windowText = (w: LiveWindow, s: LiveStats) => `[${w.frames} frame${w.frames === 1 ? '' : 's'}, ${clock(w.from)}-${clock(w.to)}${s.dropped ? `, ${s.dropped} dropped so far` : ''}]`;

export async function watchCommand(flags: WatchFlags): Promise<void> {
  const windowSeconds = parseDuration(flags.window, '--window');
  const fps = numberOption(flags.fps, '--fps');
  const maxBytes = flags.maxWindowBytes === undefined ? undefined : integerOption(flags.maxWindowBytes, '--max-window-bytes');
  const view = new ProgressView(!flags.json && process.stderr.isTTY === true);
  const options = generationOptions(flags as AskFlags, view);
  const model = await load(flags, view);
  view.stop();

  // Ctrl-C (or SIGTERM) stops the stream and the answer running, then the command ends; a second one exits at once.
  const stop = new AbortController();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = () => (stop.signal.aborted ? process.exit(130) : stop.abort(new AbortError('stopped')));
  for (const s of signals) process.on(s, onSignal);

  const onFrame = () => {
    if (live.stats.encoded === 1) err(`watching ${flags.video} (window ${windowSeconds} s at ${fps} fps); ask on stdin, Ctrl-D ends\n`);
  };
  const live = model.live({ fps, windowSeconds, maxBytes, onFrame });
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  // Stopped while waiting for a question: stdin is not read to its end.
  stop.signal.addEventListener('abort', () => rl.close(), { once: true });
  // The stream runs on its own; when it ends the window stays and questions are still answered.
  let failure: unknown;
  const following = live
    .follow(liveVideoFrames(flags.video, { fps, realtime: flags.realtime, signal: stop.signal }), { signal: stop.signal, wait: !flags.realtime })
    .then(() => {
      if (!stop.signal.aborted) err(`the stream ended at ${clock(live.window.to)}; questions are answered about its last ${live.window.frames} frame(s)\n`);
    })
    .catch((e: unknown) => {
      failure = e;
      rl.close();
    });
  try {
    for await (const line of rl) {
      const question = line.trim();
      if (!question) continue;
      // The first question waits for the first frame (or, when the source ends or fails first, for `following` to say so).
      await live.ready().catch(() => following);
      if (failure || live.window.frames === 0) break;
      const answer = live.ask(question, { ...options, signal: stop.signal });
      if (flags.json) {
        const r: LiveAskResult = await answer.done();
        out(`${JSON.stringify({ question, text: r.text, finishReason: r.finishReason, window: r.window, stats: live.stats })}\n`);
        continue;
      }
      for await (const token of answer) out(token.text);
      const r = await answer.done();
      out(` ${windowText(r.window, live.stats)}\n`);
    }
    if (failure) throw failure;
  } catch (e) {
    if (!(stop.signal.aborted && e instanceof AbortError)) throw e;
  } finally {
    stop.abort();
    rl.close();
    await following;
    live.dispose();
    for (const s of signals) process.removeListener(s, onSignal);
    await model.dispose();
  }
}
