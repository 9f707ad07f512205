import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileError, fileSystemError, integerOption, InvalidOptionError } from '@llava-mini/core';
import { writeFileAtomic } from '@llava-mini/core/node';
import { checkDtype, defaultModelDir, LlavaMini, type NodeDeviceRequest, removeStalePartials } from '@llava-mini/pipeline/node';
import * as shapes from '@llava-mini/shapes';
import { ProgressView } from './progress.js';

export interface EvalFlags {
  model?: string;
  data?: string;
  videoData?: string;
  count: string;
  videoCount?: string;
  seed: string;
  limit?: string;
  device: string;
  dtype?: string;
  json?: boolean;
  answers?: string;
  /** False with --no-video, --no-followups. */
  video: boolean;
  followups: boolean;
}

const int = (v: string, flag: string, min = 0): number => integerOption(v, flag, min);

function checkFolderOf(file: string): void {
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw fileSystemError(err) ?? err;
  }
  if (!st.isDirectory()) throw new FileError(dir, `is a file, so ${file} cannot be written under it`);
}

type Media = 'picture' | 'video';
const FLAG: Record<Media, string> = { picture: '--data', video: '--video-data' };

/** A data set named by a flag: it must exist and hold what the flag is for. */
function givenDataset(dir: string, media: Media): string {
  if (!fs.existsSync(path.join(dir, 'scenes.jsonl'))) throw new InvalidOptionError(`${FLAG[media]} ${dir}: no scenes.jsonl there (write one with llava-mini-shapes${media === 'video' ? ' --clips' : ''})`);
  const holds = shapes.datasetMedia(dir);
  if (holds !== media) throw new InvalidOptionError(`${FLAG[media]} ${dir} holds ${holds === 'video' ? 'clips: pass it as --video-data' : 'pictures: pass it as --data'}`);
  return dir;
}

/**
 * A fresh data set in the temp folder, kept for the next run with the same media, seed and count
 * (the folder's name says which). Written beside its final name and renamed; a run stopped here
 * (Ctrl-C) removes its partial folder, and one that was killed leaves it to the next run to remove.
 */
async function freshDataset(media: Media, seed: number, count: number, view: ProgressView): Promise<string> {
  const data = path.join(os.tmpdir(), `llava-mini-shapes-eval-${media === 'video' ? 'clips' : 'pictures'}-seed${seed}-n${count}`);
  if (fs.existsSync(path.join(data, 'scenes.jsonl'))) return data;
  removeStalePartials(data);
  const tmp = `${data}.partial-${process.pid}`;
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const stop = () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  };
  for (const s of signals) process.on(s, stop);
  try {
    const task = media === 'video' ? 'write clips' : 'write pictures';
    await shapes.writeDataset(tmp, { count, seed, clips: media === 'video', onProgress: (done, total) => view.callback({ task, done, total }) });
    fs.rmSync(data, { recursive: true, force: true });
    fs.renameSync(tmp, data);
    return data;
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    for (const s of signals) process.removeListener(s, stop);
  }
}

/** The library as users call it: `ask` for one question, one `chat` conversation for follow-ups. */
function evalModel(model: LlavaMini): shapes.EvalModel {
  const answer = async (a: { done(): Promise<{ text: string; ids: number[] }> }) => {
    const r = await a.done();
    return { text: r.text, ids: r.ids };
  };
  return {
    ask: (input, question) => answer(model.ask(input, question, { maxNewTokens: shapes.MAX_ANSWER_TOKENS })),
    chat: (input) => {
      const conversation = model.chat(input);
      return { ask: (question) => answer(conversation.ask(question, { maxNewTokens: shapes.MAX_ANSWER_TOKENS })), dispose: () => conversation.dispose() };
    },
  };
}

/**
 * `llava-mini eval`: accuracy per question type of a model on held-out shapes data sets: single
 * questions about pictures (--data, else written from --seed) and about clips (--video-data, else
 * written from --seed + 1), and follow-ups, a conversation about each picture and clip; one table
 * per section or JSON, with a progress bar on a terminal. This module is loaded only when eval
 * runs, so the shapes world never weighs on `ask`.
 */
export async function evalCommand(flags: EvalFlags): Promise<void> {
  // Everything the flags can get wrong is refused before minutes of work.
  if (flags.answers) checkFolderOf(flags.answers);
  if (!flags.video && flags.videoData !== undefined) throw new InvalidOptionError('--video-data and --no-video cannot go together');
  const seed = int(flags.seed, '--seed');
  const limit = flags.limit === undefined ? undefined : int(flags.limit, '--limit', 1);
  const count = flags.data === undefined ? int(flags.count, '--count', 1) : 0;
  const videoCount = flags.video && flags.videoData === undefined ? int(flags.videoCount ?? flags.count, flags.videoCount === undefined ? '--count' : '--video-count', 1) : 0;
  if (flags.data !== undefined) givenDataset(flags.data, 'picture');
  if (flags.videoData !== undefined) givenDataset(flags.videoData, 'video');

  const view = new ProgressView(process.stderr.isTTY === true);
  try {
    const data = flags.data ?? (await freshDataset('picture', seed, count, view));
    const videoData = flags.video ? (flags.videoData ?? (await freshDataset('video', seed + 1, videoCount, view))) : undefined;
    const pictures = shapes.evalItems(data, { limit });
    const video = videoData === undefined ? undefined : shapes.evalItems(videoData, { limit });
    const followups = flags.followups ? [data, ...(videoData === undefined ? [] : [videoData])].flatMap((d) => shapes.followupConversations(d, { limit })) : undefined;

    const modelDir = flags.model ?? defaultModelDir();
    const model = await LlavaMini.fromPretrained(modelDir, {
      device: flags.device as NodeDeviceRequest,
      dtype: flags.dtype === undefined ? undefined : checkDtype(flags.dtype, '--dtype'),
      logger: (m) => process.stderr.write(`${m}\n`),
      onProgress: view.callback,
    });
    try {
      const t0 = performance.now();
      const report = await shapes.evaluateSections({ pictures, video, followups }, evalModel(model), { onProgress: view.callback });
      view.stop();
      const seconds = (performance.now() - t0) / 1000;
      if (flags.answers) writeFileAtomic(flags.answers, report.answers.map((a) => JSON.stringify(a)).join('\n') + '\n');
      const asked = (section: shapes.EvalSection) => report.answers.filter((a) => a.section === section).length;
      const sections = Object.fromEntries(Object.entries(report.sections).map(([name, s]) => [name, { questions: asked(name as shapes.EvalSection), ...s }]));
      if (flags.json) {
        // overall, perType and questions at the top are the pictures section's, as before there were sections.
        const pics = report.sections.pictures!;
        const summary = { model: modelDir, data, videoData, device: flags.device, dtype: flags.dtype ?? 'as converted', questions: pictures.length, seconds, overall: pics.overall, perType: pics.perType, sections };
        process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      } else {
        const parts = [`${pictures.length} about pictures from ${data}`];
        if (video && videoData) parts.push(`${video.length} about clips from ${videoData}`);
        if (followups) parts.push(`${asked('followups')} in ${followups.length} conversations (${report.sections.followups?.overall.total ?? 0} follow-ups scored)`);
        process.stdout.write(`${shapes.formatSections(report)}\n(questions: ${parts.join('; ')}; ${seconds.toFixed(1)} s)\n`);
      }
    } finally {
      await model.dispose();
    }
  } finally {
    view.stop();
  }
}
