/**
 * Follow-ups about a video (issue 23): time to the first token of a follow-up question against the
 * conversation's first question about the same video, side by side in one run.
 *
 *   npm run bench -- follow-up              60 frames, 5 alternating rounds
 *   npm run bench -- follow-up --quick      60 frames, 2 rounds
 *   options: --frames=N, --record (write bench/RESULTS.md's "Follow-ups" section)
 *
 * Model: the headline's large LLaVA-Mini (width 1024, 16 layers, 2 pre-fusion layers, a 256-wide
 * 6-block CLIP over 576 patches; seeded random weights, fp32, onnxruntime-node CPU). Frames are
 * 336x336 pictures made in JavaScript and handed over by a custom `resolveInput`, so no time goes to
 * a video decoder (a real video's follow-up would also skip ffmpeg). Each round has a video of its
 * own (new frames) and a fresh conversation: the first question (every frame encoded), then the
 * follow-up with the frames' pre-fusion states kept (the default); a second conversation keeping no
 * state (`videoStateBytes: 0`), whose first question and follow-up take the frames' prefixes from the
 * model's picture cache (the video read again, the earlier prompt's text fused again); and the
 * follow-up as a stateless request (`model.ask` with the history, what a server request replays),
 * from the picture cache too. All follow-ups give the same tokens; the bench checks it.
 */
import { LlavaMini, loadParts } from '@llava-mini/pipeline/node';
import { benchCommand, flag, fmt, LoadMeter, log, machine, median, option, RESULTS, replaceMarked, table } from './lib/common.js';
import { ensureModel, randomImage } from './lib/models.js';
import { HEADLINE_LARGE } from './lib/shapes.js';

const QUICK = flag('quick');
const ROUNDS = QUICK ? 2 : 5;
const FRAMES = Number(option('frames') ?? 60);
const QUESTIONS = ['What happens in this video?', 'And what colour is the last thing you saw?'];
const meter = new LoadMeter();

async function main(): Promise<void> {
  const { converted } = await ensureModel('headline-large', HEADLINE_LARGE, 4096);
  const parts = await loadParts(converted, { device: 'cpu' });
  // The input names a round ('round-N'): its video's frames, made in JavaScript (the same pixels each time it is read).
  const model = new LlavaMini({
    ...parts,
    resolveInput: async (input) => ({
      kind: 'video',
      count: FRAMES,
      frames: (async function* () {
        const round = Number(String(input).slice('round-'.length));
        for (let i = 0; i < FRAMES; i++) yield randomImage(round * 10_000 + i + 1);
      })(),
    }),
  });
  const ttft: Record<string, number[]> = { first: [], firstNone: [], kept: [], none: [], stateless: [] };
  await model.ask(`round-${ROUNDS}`, 'warm up', { maxNewTokens: 1 }).done();
  for (let round = 0; round < ROUNDS; round++) {
    log(`round ${round + 1}/${ROUNDS}...`);
    const video = `round-${round}`;
    const kept = model.chat(video);
    const none = model.chat(video, { videoStateBytes: 0 });
    const a = await kept.ask(QUESTIONS[0], { maxNewTokens: 4 }).done();
    const b = await none.ask(QUESTIONS[0], { maxNewTokens: 4 }).done();
    ttft.first.push(a.timings.timeToFirstTokenMs);
    ttft.firstNone.push(b.timings.timeToFirstTokenMs);
    const history = [{ user: QUESTIONS[0], assistant: a.text }];
    // Alternate the order of the three follow-ups, so none always runs on the warmest caches.
    const runs: [string, () => Promise<{ ids: number[]; timings: { timeToFirstTokenMs: number } }>][] = [
      ['kept', () => kept.ask(QUESTIONS[1], { maxNewTokens: 4 }).done()],
      ['none', () => none.ask(QUESTIONS[1], { maxNewTokens: 4 }).done()],
      ['stateless', () => model.ask(video, QUESTIONS[1], { maxNewTokens: 4, history }).done()],
    ];
    const ids: number[][] = [];
    for (const [name, run] of round % 2 ? runs.reverse() : runs) {
      const r = await run();
      ttft[name].push(r.timings.timeToFirstTokenMs);
      ids.push(r.ids);
    }
    if (new Set(ids.map((x) => x.join())).size !== 1) throw new Error('the follow-ups gave different tokens');
    kept.dispose();
    none.dispose();
  }
  await model.dispose();

  const first = median(ttft.first);
  const row = (label: string, ms: number) => [label, fmt(ms), fmt(ms / first, 3)];
  const md = [
    '## Follow-ups about a video (issue 23)',
    '',
    `\`${benchCommand('follow-up')}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}; ${meter.report()}.`,
    `The headline's large LLaVA-Mini (width 1024, 16 layers, 2 pre-fusion layers, CLIP 256 wide, 6 blocks, 576 patches; random weights, fp32, onnxruntime-node CPU), a ${FRAMES}-frame video made in JavaScript (no decoder time), 4 answer tokens; time to first token, medians of ${ROUNDS} rounds, each a fresh conversation. All follow-ups gave the same tokens.`,
    '',
    table(
      ['question', 'TTFT ms', 'vs first'],
      [
        row('first question (every frame encoded; the frames\' states kept)', first),
        row('first question of a second conversation (frames from the picture cache, no state kept)', median(ttft.firstNone)),
        row('follow-up, frame states kept (default)', median(ttft.kept)),
        row('follow-up, no state kept (`videoStateBytes: 0`: the video read again, its frames from the picture cache)', median(ttft.none)),
        row('the same follow-up as a stateless request (`ask` with the history; frames from the picture cache)', median(ttft.stateless)),
      ],
    ),
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (flag('record')) replaceMarked(RESULTS, 'follow-up', md);
}

await main();
