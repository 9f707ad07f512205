/**
 * The soak (issue 26): N mixed requests through the official `openai` client against a real
 * `llava-mini serve --parallel 4`, checking that none is lost and that nothing grows.
 *
 *   npm run bench -- soak [--requests=N] [--concurrency=N] [--rounds=N] [--model=DIR] [--record]
 *
 * The mix (seeded, the same every run): plain and streamed text, pictures (16 distinct ones, streamed
 * and not), an inline video, json_schema answers, streams cut after their first chunk, requests given
 * up after 30 ms (queued or running), and malformed ones (400/404). `--concurrency` clients (default
 * 20) share them, as many as 4 running + the queue of 16 take; a cancelled request holds its slot
 * until its worker stops it, so some are refused with 429.
 *
 * Checks: every request settles as one of answered (complete and well-formed), cancelled (only those
 * meant to be), refused (429/503 in OpenAI's error shape) or rejected (400/404, only the malformed);
 * none lost (no connection error, no timeout, no 5xx); the server counted as many requests as were
 * sent; and between rounds (all requests settled), the KV cache holds no more than what is kept
 * across requests (the same every time), and RSS and the caches grow <= 5 % over the second half
 * (medians of its quarters); the JavaScript heaps are shown.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mulberry32 } from '@llava-mini/core';
import { ensureTinyModel } from '@llava-mini/pipeline/node';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import sharp from 'sharp';
import { benchCommand, CACHE, flag, fmt, LoadMeter, log, machine, median, now, option, RESULTS, replaceMarked, ROOT, table } from './lib/common.js';
import { scrape, startServe, total } from './lib/serve-cli.js';

const REQUESTS = Number(option('requests') ?? 10_000);
const CONCURRENCY = Number(option('concurrency') ?? 20);
const ROUNDS = Number(option('rounds') ?? 20);
const PARALLEL = 4;
const GROWTH_LIMIT = 5;

type Kind = 'text' | 'stream' | 'image' | 'image-stream' | 'video' | 'schema' | 'cut-stream' | 'give-up' | 'malformed';
/** Shares of the mix, in percent. */
const MIX: [Kind, number][] = [
  ['text', 22],
  ['stream', 18],
  ['image', 10],
  ['image-stream', 8],
  ['video', 4],
  ['schema', 10],
  ['cut-stream', 10],
  ['give-up', 8],
  ['malformed', 10],
];
type Outcome = 'answered' | 'cancelled' | 'refused' | 'rejected' | 'lost';

const dataUrl = (bytes: Buffer, type: string) => `data:${type};base64,${bytes.toString('base64')}`;

async function pictures(n: number): Promise<string[]> {
  const house = fs.readFileSync(path.join(ROOT, 'examples/assets/house.png'));
  return Promise.all(Array.from({ length: n }, async (_, i) => dataUrl(await sharp(house).modulate({ hue: i * 22 }).png().toBuffer(), 'image/png')));
}

interface Sample {
  done: number;
  rss: number;
  /** The HTTP thread's JavaScript heap, and the workers'. */
  heap: number;
  workerHeap: number;
  kvBytes: number;
  pictureBytes: number;
  pictureEntries: number;
}

async function main(): Promise<void> {
  const meter = new LoadMeter();
  const model = option('model') ?? (await ensureTinyModel(path.join(CACHE, 'models', 'tiny-serve')));
  const images = await pictures(16);
  const video = dataUrl(fs.readFileSync(path.join(ROOT, 'examples/assets/shapes.mp4')), 'video/mp4');
  const server = await startServe(['--model', model, '--model-id', 'soak', '--parallel', String(PARALLEL), '--queue', '16']);
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120_000 });
  // The server's own temporary folders (an inline video waits in one for its request's length).
  const temps = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('llava-serve-')).length;
  const tmpBefore = temps();
  log(`soak: ${REQUESTS} requests, ${CONCURRENCY} clients, --parallel ${PARALLEL}, ${server.url}`);

  const random = mulberry32(26);
  const kinds: Kind[] = Array.from({ length: REQUESTS }, () => {
    let r = random() * 100;
    for (const [kind, share] of MIX) if ((r -= share) < 0) return kind;
    return 'text';
  });
  const outcomes = new Map<Kind, Map<Outcome, number>>(MIX.map(([k]) => [k, new Map()]));
  const problems: string[] = [];
  const latencies: number[] = [];

  const user = (i: number, kind: Kind): OpenAI.Chat.ChatCompletionMessageParam[] => {
    if (kind === 'image' || kind === 'image-stream') return [{ role: 'user', content: [{ type: 'image_url', image_url: { url: images[i % images.length] } }, { type: 'text', text: 'What is in this picture?' }] }];
    if (kind === 'video') return [{ role: 'user', content: [{ type: 'video_url', video_url: { url: video } }, { type: 'text', text: 'What moves?' }] } as never];
    return [{ role: 'user', content: `Request ${i}: tell me something.` }];
  };

  /** One request of its kind; what became of it (or a problem, which fails the soak). */
  async function one(i: number, kind: Kind): Promise<Outcome> {
    const base = { model: 'soak', messages: user(i, kind), max_tokens: 8 };
    const abort = new AbortController();
    try {
      switch (kind) {
        case 'text':
        case 'image':
        case 'video': {
          const r = await client.chat.completions.create(base);
          if (r.choices[0]?.message.role !== 'assistant' || !r.usage?.completion_tokens) throw new Error(`malformed answer: ${JSON.stringify(r).slice(0, 200)}`);
          return 'answered';
        }
        case 'schema': {
          const schema = { type: 'object', properties: { answer: { enum: ['yes', 'no'] } }, required: ['answer'], additionalProperties: false };
          const r = await client.chat.completions.create({ ...base, max_tokens: 24, response_format: { type: 'json_schema', json_schema: { name: 'yn', schema, strict: true } } });
          const c = r.choices[0];
          if (c.finish_reason === 'stop' && !['yes', 'no'].includes(JSON.parse(c.message.content ?? '').answer)) throw new Error(`schema broken: ${c.message.content}`);
          return 'answered';
        }
        case 'stream':
        case 'image-stream':
        case 'cut-stream': {
          const stream = await client.chat.completions.create({ ...base, max_tokens: kind === 'cut-stream' ? 400 : 8, stream: true, stream_options: { include_usage: true } }, { signal: abort.signal });
          let finished = false;
          let usage = false;
          for await (const chunk of stream) {
            if (kind === 'cut-stream') {
              abort.abort();
              break;
            }
            if (chunk.choices[0]?.finish_reason) finished = true;
            if (chunk.usage) usage = true;
          }
          if (kind === 'cut-stream') return 'cancelled';
          if (!finished || !usage) throw new Error('a stream ended without its finish chunk or usage');
          return 'answered';
        }
        case 'give-up': {
          setTimeout(() => abort.abort(), 30);
          await client.chat.completions.create({ ...base, max_tokens: 200 }, { signal: abort.signal });
          return 'answered';
        }
        case 'malformed': {
          const bad = [
            { ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] },
            { ...base, temperature: 9 },
            { ...base, model: 'another-model' },
          ][i % 3];
          await client.chat.completions.create(bad as never);
          throw new Error('a malformed request was answered');
        }
      }
    } catch (err) {
      if (err instanceof APIUserAbortError && (kind === 'give-up' || kind === 'cut-stream')) return 'cancelled';
      if (err instanceof APIConnectionError) throw new Error(`lost: ${err.message}`);
      if (err instanceof APIError && err.status !== undefined && typeof err.error === 'object' && err.type && err.message) {
        if (err.status === 429 || err.status === 503) return 'refused';
        if (kind === 'malformed' && (err.status === 400 || err.status === 404)) return 'rejected';
      }
      throw err;
    }
  }

  const samples: Sample[] = [];
  const sample = async (done: number) => {
    // Quiet first: every request settled on the client; the server's side of the cancelled ones too.
    for (let t = now(); now() - t < 30_000; await new Promise((r) => setTimeout(r, 50))) {
      const h = (await (await fetch(`${server.url}/health`)).json()) as { running: number; queued: number };
      if (h.running === 0 && h.queued === 0) break;
    }
    const m = await scrape(server.url);
    samples.push({ done, rss: total(m, 'llava_mini_process_resident_memory_bytes'), heap: total(m, 'llava_mini_nodejs_heap_size_used_bytes'), workerHeap: total(m, 'llava_mini_worker_heap_bytes'), kvBytes: total(m, 'llava_mini_kv_cache_bytes'), pictureBytes: total(m, 'llava_mini_picture_cache_bytes'), pictureEntries: total(m, 'llava_mini_picture_cache_entries') });
    return m;
  };

  const t0 = now();
  let next = 0;
  let sent = 0;
  await sample(0);
  for (let round = 1; round <= ROUNDS; round++) {
    const end = Math.round((REQUESTS * round) / ROUNDS);
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < end) {
          const i = next++;
          const kind = kinds[i];
          const t = now();
          sent++;
          const outcome = await one(i, kind).catch((err: unknown) => {
            problems.push(`#${i} ${kind}: ${err instanceof Error ? `${err.constructor.name} ${err.message}` : String(err)}`.slice(0, 300));
            return 'lost' as const;
          });
          if (outcome === 'answered') latencies.push(now() - t);
          const counts = outcomes.get(kind) as Map<Outcome, number>;
          counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
        }
      }),
    );
    const m = await sample(end);
    const s = samples.at(-1) as Sample;
    log(`round ${round}/${ROUNDS}: ${end} requests, ${fmt((now() - t0) / 1000, 0)} s, RSS ${fmt(s.rss / 1e6)} MB, KV ${s.kvBytes} B, picture cache ${fmt(s.pictureBytes / 1e6, 2)} MB (${s.pictureEntries}), server counted ${total(m, 'llava_mini_requests_total')}, problems ${problems.length}`);
  }
  const seconds = (now() - t0) / 1000;
  const final = await scrape(server.url);
  meter.addOwn(server.cpuSeconds());
  const exit = await server.stop();
  const tmpAfter = temps();

  // Growth over the second half, three ways: the median of its last quarter of samples against the
  // median of its first (what the check uses: one sample of RSS moves by a few % with the allocators
  // and the collector), the last sample against the midpoint's, and the highest after the midpoint.
  const half = Math.floor((samples.length - 1) / 2);
  const late = samples.slice(half);
  const quarter = Math.max(1, Math.floor(late.length / 2));
  const pct = (a: number, b: number) => (a === b ? 0 : a === 0 ? Number.POSITIVE_INFINITY : (100 * (b - a)) / a);
  // A heap's used size counts garbage not yet collected, so a sample is anywhere above what is live:
  // for the heaps the quarters are compared by their lowest sample (what survives collections) instead.
  const lowest = (xs: number[]) => Math.min(...xs);
  const growth = (pick: (s: Sample) => number, floor = false) => ({
    quarters: pct((floor ? lowest : median)(late.slice(0, quarter).map(pick)), (floor ? lowest : median)(late.slice(-quarter).map(pick))),
    end: pct(pick(late[0]), pick(late.at(-1) as Sample)),
    max: pct(pick(late[0]), Math.max(...late.map(pick))),
  });
  // What the issue asks to stay flat; the heaps are shown, not judged: a sample is taken whenever the
  // round ends, with garbage of any age in it, and moves by 10-20 % from one to the next.
  const measures: [string, (s: Sample) => number][] = [
    ['RSS', (s) => s.rss],
    ['KV cache', (s) => s.kvBytes],
    ['picture cache', (s) => s.pictureBytes],
  ];
  const growths = measures.map(([name, pick]) => ({ name, ...growth(pick) }));
  const heaps = ([['HTTP thread heap', (s: Sample) => s.heap], ['worker heap', (s: Sample) => s.workerHeap]] as const).map(([name, pick]) => ({ name, ...growth(pick, true) }));
  const kv = samples.slice(1).map((s) => s.kvBytes);
  const serverCounted = total(final, 'llava_mini_requests_total');
  // A request given up after 30 ms may be abandoned before it reaches the server (a busy client): those are the only ones it may not count.
  const givenUp = outcomes.get('give-up')?.get('cancelled') ?? 0;
  const lost = problems.length;
  const checks: [string, boolean][] = [
    [`every request settled as answered, cancelled, refused or rejected (${lost} otherwise)`, lost === 0],
    [`the server counted every request (${serverCounted} of ${sent}; ${givenUp} given up after 30 ms may not have reached it)`, serverCounted <= sent && serverCounted >= sent - givenUp],
    [`the KV cache whenever all requests had settled: ${Math.min(...kv)} to ${Math.max(...kv)} bytes (what caches kept across requests hold, e.g. a video's opening; no conversation's)`, Math.max(...kv) <= Math.min(...kv) * 1.05],
    ...growths.map((g): [string, boolean] => [`${g.name} over the second half: ${fmt(g.quarters)} % (its last quarter of samples against its first) <= ${GROWTH_LIMIT} %; last sample ${fmt(g.end)} %, highest ${fmt(g.max)} % above the midpoint's`, g.quarters <= GROWTH_LIMIT]),
    [`the server's temporary folders left (inline videos written for ffmpeg): ${tmpAfter - tmpBefore}`, tmpAfter <= tmpBefore],
    [`the server drained and exited 0 on SIGTERM (${exit})`, exit === 0],
  ];

  const sum = (o: Outcome) => [...outcomes.values()].reduce((a, m) => a + (m.get(o) ?? 0), 0);
  const rows: (string | number)[][] = MIX.map(([kind]) => {
    const m = outcomes.get(kind) as Map<Outcome, number>;
    return [kind, ...(['answered', 'cancelled', 'refused', 'rejected', 'lost'] as Outcome[]).map((o) => m.get(o) ?? 0)];
  });
  rows.push(['all', ...(['answered', 'cancelled', 'refused', 'rejected', 'lost'] as Outcome[]).map(sum)]);
  const sampleRows = samples.map((s) => [s.done, fmt(s.rss / 1e6), fmt(s.heap / 1e6), fmt(s.workerHeap / 1e6), s.kvBytes, fmt(s.pictureBytes / 1e6, 2), s.pictureEntries]);
  const markdown = [
    '## The soak (issue 26)',
    '',
    `\`${benchCommand('soak')}\` on ${machine()}, ${new Date().toISOString().slice(0, 10)}; the machine was shared (${meter.report()}). ` +
      `${sent} requests through the official \`openai\` client, ${CONCURRENCY} at a time, against \`llava-mini serve --parallel ${PARALLEL} --queue 16\` (random-weight tiny model) in ${fmt(seconds, 0)} s; ` +
      `answered requests took ${fmt(median(latencies), 0)} ms (median).`,
    '',
    table(['kind', 'answered', 'cancelled', 'refused (429/503)', 'rejected (400/404)', 'lost'], rows),
    '',
    'Between rounds, with every request settled (RSS of the whole server process; the caches summed over its workers):',
    '',
    table(['requests done', 'RSS MB', 'HTTP thread heap MB', 'worker heap MB', 'KV cache bytes', 'picture cache MB', 'pictures held'], sampleRows),
    '',
    ...checks.map(([what, ok]) => `- ${ok ? 'PASS' : 'FAIL'}: ${what}`),
    ...heaps.map((g) => `- shown only: ${g.name} over the second half, its last quarter's lowest sample against its first's: ${fmt(g.quarters)} %; the last sample ${fmt(g.end)} % above the midpoint's`),
    ...(problems.length ? ['', 'First problems:', '', ...problems.slice(0, 10).map((p) => `- ${p}`)] : []),
  ].join('\n');
  console.log(markdown);
  if (flag('record')) replaceMarked(RESULTS, 'soak', markdown);
  if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
}

await main();
