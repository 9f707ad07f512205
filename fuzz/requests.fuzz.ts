// Fuzz targets for what a request or a jobs file brings: the /v1/chat/completions body and its
// content parts, data: URLs, image sniffing and decoding, JSONL job lines, and ffprobe's output for
// a video someone sent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseJob, readJobsFile, resolvePaths } from '@llava-mini/batch';
import { loadImage, sniffImageFormat } from '@llava-mini/encoder/node';
import { parseChatRequest } from '@llava-mini/pipeline';
import { dataUrlBytes } from '@llava-mini/pipeline/node';
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { parseProbe } from '../packages/encoder/src/video.js';
import { fuzz, mutatedSeeds, seeds } from './harness.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const parsed = (b: Uint8Array): unknown => {
  try {
    return JSON.parse(text(b));
  } catch {
    return text(b);
  }
};

/** Arrays or objects nested up to 200,000 deep, as JSON text: JSON.parse takes them, recursive code after it may not. */
const deepText = fc.tuple(fc.integer({ min: 1, max: 200_000 }), fc.boolean()).map(([n, object]) => (object ? `${'{"a":'.repeat(n)}1${'}'.repeat(n)}` : `${'['.repeat(n)}${']'.repeat(n)}`));
const shallowJson = fc.jsonValue({ maxDepth: 3 });
/** Any JSON value, now and then a deep one (only where the target is handed values, not text: JSON.stringify would overflow). */
const anyJson = fc.oneof({ weight: 30, arbitrary: shallowJson }, { weight: 1, arbitrary: deepText.map((t) => JSON.parse(t) as unknown) });
/** Content parts as OpenAI and vLLM spell them, with wrong types, unknown kinds and odd URLs mixed in. */
const url = fc.oneof(
  fc.constantFrom('data:image/png;base64,iVBORw0KGgo=', 'data:video/mp4;base64,AAAA', 'data:,', 'file:///etc/passwd', 'https://example.com/a.png', '/abs/path.png', 'relative.png', 'data:image/png;base64,%%%', ''),
  fc.string({ maxLength: 30 }),
  shallowJson,
);
const part = fc.oneof(
  fc.record({ type: fc.constant('text'), text: fc.oneof(fc.string({ maxLength: 30 }), anyJson) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('image_url'), image_url: fc.oneof(fc.record({ url, detail: fc.constantFrom('auto', 'low', 'high', 'x') }, { requiredKeys: [] }), url) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('video_url'), video_url: fc.oneof(fc.record({ url }, { requiredKeys: [] }), url) }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.oneof(fc.constantFrom('input_audio', 'image', 'refusal', 'file'), fc.string({ maxLength: 8 })), image: anyJson }, { requiredKeys: ['type'] }),
  anyJson,
);
const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom('system', 'developer', 'user', 'assistant', 'tool', 'function'), fc.string({ maxLength: 6 }), anyJson),
    content: fc.oneof(fc.string({ maxLength: 30 }), fc.array(part, { maxLength: 5 }), anyJson),
    name: fc.string({ maxLength: 6 }),
  },
  { requiredKeys: ['role'] },
);
const body = fc.record(
  {
    model: fc.oneof(fc.string({ maxLength: 8 }), anyJson),
    messages: fc.oneof(fc.array(message, { maxLength: 6 }), anyJson),
    stream: fc.oneof(fc.boolean(), anyJson),
    stream_options: fc.oneof(fc.record({ include_usage: fc.oneof(fc.boolean(), anyJson) }, { requiredKeys: [] }), anyJson),
    max_tokens: fc.oneof(fc.integer(), fc.double(), anyJson),
    max_completion_tokens: fc.oneof(fc.integer(), anyJson),
    temperature: fc.oneof(fc.double(), anyJson),
    top_p: fc.oneof(fc.double(), anyJson),
    seed: fc.oneof(fc.integer(), fc.double(), anyJson),
    stop: fc.oneof(fc.string({ maxLength: 4 }), fc.array(fc.string({ maxLength: 4 }), { maxLength: 6 }), anyJson),
    n: fc.oneof(fc.integer({ min: -1, max: 3 }), anyJson),
    response_format: anyJson,
    tools: anyJson,
    logprobs: anyJson,
    [`x_${'unknown'}`]: anyJson,
  },
  { requiredKeys: [] },
);

describe('requests and jobs', () => {
  it('/v1/chat/completions body: parseChatRequest', async () => {
    const examples = seeds('chat-request').map((b) => JSON.parse(text(b)) as unknown);
    await fuzz('chat-request', fc.oneof(body, mutatedSeeds('chat-request').map(parsed), anyJson), (b) => parseChatRequest(b), examples);
  });

  it('data: URLs: dataUrlBytes, then the sniffer on what it gives', async () => {
    const b64 = fc.stringMatching(/^[A-Za-z0-9+/= \n%-]{0,40}$/);
    const grammar = fc
      .tuple(fc.constantFrom('data:', 'DATA:', 'data', ''), fc.oneof(fc.constantFrom('image/png', 'image/jpeg', '', 'text/plain'), fc.string({ maxLength: 10 })), fc.array(fc.constantFrom(';base64', ';BASE64', ';charset=utf-8', ';', ';name=a,b'), { maxLength: 3 }), fc.constantFrom(',', ''), b64)
      .map((p) => p.join(''));
    await fuzz('data-url', fc.oneof(grammar, mutatedSeeds('data-url').map(text)), (u) => sniffImageFormat(dataUrlBytes(u).subarray(0, 1024)));
  });

  it('images: loadImage on mutated files of every format (sniffing, header, decoding)', async () => {
    await fuzz('image-decode', mutatedSeeds('image-decode'), async (bytes) => {
      sniffImageFormat(bytes);
      const img = await loadImage(bytes, { maxPixels: 1 << 22, name: 'fuzzed' });
      if (img.data.length !== img.width * img.height * 3) throw new Error(`decoded ${img.width}x${img.height} with ${img.data.length} bytes`);
    }, seeds('image-decode'));
  });

  it('JSONL job lines: readJobsFile, then resolvePaths and parseJob on each line', async () => {
    const line = fc.oneof(
      fc
        .record(
          {
            id: fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.double(), shallowJson),
            image: fc.oneof(url, fc.constantFrom('../../etc/passwd', 'https://x/y.png', 'ftp://h/f')),
            images: fc.oneof(fc.array(url, { maxLength: 3 }), shallowJson),
            video: url,
            question: fc.oneof(fc.string({ maxLength: 10 }), shallowJson),
            questions: fc.oneof(fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 }), shallowJson),
            metadata: shallowJson,
            extra: shallowJson,
          },
          { requiredKeys: [] },
        )
        .map((o) => JSON.stringify(o)),
      fc.string({ maxLength: 20 }),
      deepText.map((t) => `{"id": "deep", "image": "a.png", "question": "?", "metadata": ${t}}`),
    );
    const file = path.join(dir, 'jobs.jsonl');
    const arb = fc.oneof(fc.array(line, { maxLength: 5 }).map((l) => l.join('\n')), mutatedSeeds('jobs-jsonl').map(text));
    await fuzz('jobs-jsonl', arb, async (t) => {
      fs.writeFileSync(file, t);
      const jobs = await readJobsFile(file);
      for (const { raw } of jobs.lines) {
        try {
          parseJob(resolvePaths(raw, jobs.baseDir));
        } catch (err) {
          // A bad line fails its job alone: still a typed error, checked like any other.
          if (!(err instanceof Error) || !('code' in err)) throw err;
        }
      }
    });
  });

  it("ffprobe's output: parseProbe", async () => {
    const rate = fc.oneof(fc.constantFrom('10/1', '30000/1001', '0/0', '1/0', '-1/1', 'Infinity/1', 'NaN', ''), fc.string({ maxLength: 8 }), shallowJson);
    const stream = fc.record(
      {
        width: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.double(), shallowJson),
        height: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.double(), shallowJson),
        avg_frame_rate: rate,
        r_frame_rate: rate,
        nb_read_packets: fc.oneof(fc.nat().map(String), fc.string({ maxLength: 6 }), shallowJson),
        tags: fc.oneof(fc.record({ rotate: fc.oneof(fc.constantFrom('90', '-90', '180', '270', 'x'), shallowJson) }, { requiredKeys: [] }), shallowJson),
        side_data_list: fc.oneof(fc.array(fc.oneof(fc.record({ rotation: fc.oneof(fc.integer(), shallowJson) }, { requiredKeys: [] }), shallowJson), { maxLength: 3 }), shallowJson),
      },
      { requiredKeys: [] },
    );
    const out = fc.oneof(fc.record({ streams: fc.oneof(fc.array(stream, { maxLength: 2 }), shallowJson) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)), mutatedSeeds('video-probe').map(text), fc.string({ maxLength: 20 }), deepText.map((t) => `{"streams":[{"width":${t}}]}`));
    await fuzz('video-probe', out, (o) => parseProbe(o, 'fuzzed.mp4'), seeds('video-probe').map(text));
  });
});

