/**
 * What `serve --isolation process` costs against the default worker threads (issue 26):
 *
 *   npm run bench -- isolation [--quick] [--workers=N] [--model=DIR] [--record]
 *
 * Each round starts the real CLI's server once per kind, alternating, and measures the time to
 * ready, the memory of the server and every process it started (PSS, from /proc), the latency
 * of picture questions asked one after another, and the time a SIGTERM takes to end it. Medians
 * over the rounds; the ratios are process / thread.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureTinyModel } from '@llava-mini/pipeline/node';
import { benchCommand, CACHE, flag, fmt, LoadMeter, log, machine, median, now, option, RESULTS, replaceMarked, ROOT, table } from './lib/common.js';
import { cpuSecondsOf, startServe } from './lib/serve-cli.js';

const QUICK = flag('quick');
const ROUNDS = QUICK ? 2 : 4;
const REQUESTS = QUICK ? 10 : 30;
const WORKERS = Number(option('workers') ?? 2);
const IMAGE = `data:image/png;base64,${fs.readFileSync(path.join(ROOT, 'examples/assets/house.png')).toString('base64')}`;

/** `pid` and its descendants (Linux /proc; just `pid` elsewhere). */
function processTree(pid: number): number[] {
  let parents: [number, number][];
  try {
    parents = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d): [number, number][] => {
      try {
        return [[Number(d), Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${d}/status`, 'utf8'))?.[1])]];
      } catch {
        return []; // gone meanwhile
      }
    });
  } catch {
    return [pid];
  }
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, pp] of parents) if (!tree.has(p) && tree.has(pp)) grew = tree.add(p) !== undefined;
  }
  return [...tree];
}

/** Sum over processes of a /proc reading (0 for one that cannot be read). */
const sum = (pids: number[], read: (pid: number) => number) =>
  pids.reduce((n, pid) => {
    try {
      return n + read(pid);
    } catch {
      return n;
    }
  }, 0);
/** Proportional set size: pages shared between processes (Node, onnxruntime's library) counted once in all. */
const pss = (pid: number) => 1024 * Number(/^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);

async function ask(url: string, i: number): Promise<number> {
  const t = now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: IMAGE } }, { type: 'text', text: `Question ${i}: what colour is it?` }] }], max_tokens: 8 }),
  });
  await res.text();
  if (res.status !== 200) throw new Error(`request ${i}: status ${res.status}`);
  return now() - t;
}

interface Round {
  ready: number;
  rss: number;
  latency: number;
  stop: number;
}

async function round(model: string, isolation: 'thread' | 'process', meter: LoadMeter): Promise<Round> {
  const t0 = now();
  const server = await startServe(['--model', model, '--workers', String(WORKERS), '--isolation', isolation]);
  const ready = now() - t0;
  try {
    await Promise.all(Array.from({ length: WORKERS }, (_, i) => ask(server.url, -1 - i))); // warm-up: each worker's first picture
    const latencies: number[] = [];
    for (let i = 0; i < REQUESTS; i++) latencies.push(await ask(server.url, i));
    const tree = processTree(server.child.pid as number);
    const rss = sum(tree, pss);
    meter.addOwn(sum(tree, cpuSecondsOf)); // the servers are this bench's work, not other load
    const t1 = now();
    await server.stop();
    return { ready, rss, latency: median(latencies), stop: now() - t1 };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

async function main(): Promise<void> {
  const meter = new LoadMeter();
  const model = option('model') ?? (await ensureTinyModel(path.join(CACHE, 'serve-tiny')));
  const got: Record<'thread' | 'process', Round[]> = { thread: [], process: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of ['thread', 'process'] as const) {
      log(`round ${r + 1}/${ROUNDS}: ${kind}`);
      got[kind].push(await round(model, kind, meter));
    }
  }
  const m = (kind: 'thread' | 'process', k: keyof Round) => median(got[kind].map((x) => x[k]));
  const line = (what: string, k: keyof Round, unit: (x: number) => string) => [what, unit(m('thread', k)), unit(m('process', k)), `${fmt(m('process', k) / m('thread', k), 2)}x`];
  const ms = (x: number) => fmt(x, 0);
  const rows = [
    line('start to ready, ms', 'ready', ms),
    line('memory of the server and its processes (PSS: shared pages split between them), MB', 'rss', (x) => fmt(x / 1e6, 0)),
    line('a picture question, one at a time, ms (median)', 'latency', (x) => fmt(x, 1)),
    line('SIGTERM to exit, ms', 'stop', ms),
  ];
  const lines = [
    '### What worker processes cost (issue 26)',
    '',
    `Command: \`${benchCommand('isolation')}\`, ${new Date().toISOString().slice(0, 16)} UTC. Machine: ${machine()}; ${meter.report()}.`,
    '',
    `\`llava-mini serve --workers ${WORKERS}\` with threads (the default) and with \`--isolation process\`, the real CLI in a child process, ${option('model') ? `model ${model}` : 'the random-weight tiny model'}; ${ROUNDS} rounds alternating the two; in each, a warm-up and then ${REQUESTS} picture questions (8 tokens) one after another. Medians over rounds.`,
    '',
    table(['', 'threads', 'processes', 'processes / threads'], rows, [false, true, true, true]),
  ];
  console.log(lines.join('\n'));
  if (flag('record')) replaceMarked(RESULTS, 'isolation', lines.join('\n'), '<!-- serve:start -->');
}

await main();
