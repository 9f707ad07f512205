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
  count: string;
  seed: string;
  limit?: string;
  device: string;
  dtype?: string;
  json?: boolean;
  answers?: string;
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

/**
 * `llava-mini eval`: accuracy per question type of a model on a held-out shapes data set (written
 * from --seed unless --data names one), as a table or JSON, with a progress bar on a terminal. This
 * module is loaded only when eval runs, so the shapes world never weighs on `ask`.
 */
export async function evalCommand(flags: EvalFlags): Promise<void> {
  // Where the answers go is checked before the evaluation, not after minutes of it.
  if (flags.answers) checkFolderOf(flags.answers);
  let data = flags.data;
  const seed = int(flags.seed, '--seed');
  const limit = flags.limit === undefined ? undefined : int(flags.limit, '--limit', 1);
  if (data === undefined) {
    const count = int(flags.count, '--count', 1);
    data = path.join(os.tmpdir(), `llava-mini-shapes-eval-seed${seed}-n${count}`);
    if (!fs.existsSync(path.join(data, 'scenes.jsonl'))) {
      // Written beside its final name and renamed; a run stopped here (Ctrl-C) removes its partial
      // folder, and one that was killed leaves it to the next run to remove.
      removeStalePartials(data);
      const tmp = `${data}.partial-${process.pid}`;
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      const stop = () => {
        fs.rmSync(tmp, { recursive: true, force: true });
        process.exit(130);
      };
      for (const s of signals) process.on(s, stop);
      try {
        await shapes.writeDataset(tmp, { count, seed });
        fs.rmSync(data, { recursive: true, force: true });
        fs.renameSync(tmp, data);
      } catch (err) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw err;
      } finally {
        for (const s of signals) process.removeListener(s, stop);
      }
    }
  } else if (!fs.existsSync(path.join(data, 'scenes.jsonl'))) {
    throw new InvalidOptionError(`--data ${data}: no scenes.jsonl there (write one with llava-mini-shapes)`);
  }
  const items = shapes.evalItems(data, { limit });
  const modelDir = flags.model ?? defaultModelDir();
  const view = new ProgressView(process.stderr.isTTY === true);
  const model = await LlavaMini.fromPretrained(modelDir, {
    device: flags.device as NodeDeviceRequest,
    dtype: flags.dtype === undefined ? undefined : checkDtype(flags.dtype, '--dtype'),
    logger: (m) => process.stderr.write(`${m}\n`),
    onProgress: view.callback,
  });
  try {
    const t0 = performance.now();
    const report = await shapes.evaluate(
      items,
      async (image, question) => {
        const r = await model.ask(image, question, { maxNewTokens: 16 }).done();
        return { text: r.text, ids: r.ids };
      },
      { onProgress: view.callback },
    );
    view.stop();
    const seconds = (performance.now() - t0) / 1000;
    if (flags.answers) writeFileAtomic(flags.answers, report.answers.map((a) => JSON.stringify(a)).join('\n') + '\n');
    const summary = { model: modelDir, data, device: flags.device, dtype: flags.dtype ?? 'as converted', questions: items.length, seconds, overall: report.overall, perType: report.perType };
    process.stdout.write(flags.json ? `${JSON.stringify(summary, null, 2)}\n` : `${shapes.formatReport(report)}\n(${items.length} questions from ${data}, ${seconds.toFixed(1)} s)\n`);
  } finally {
    view.stop();
    await model.dispose();
  }
}
