// A video the model has read to its end is not decoded again: a new conversation or a stateless
// request about the same file (the same bytes, wherever they are) takes its frames from the picture
// cache and runs neither ffprobe nor ffmpeg, and its prompt's opening rows from the LLM's held copy,
// with the same tokens. ffmpeg's runs are counted through
// FFMPEG_PATH / FFPROBE_PATH wrappers that log each call and run the real tools.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ffmpegBinary } from '@llava-mini/encoder/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlavaMini } from '../src/node.js';
import { type Fixture, fixture, VIDEO } from './fixtures.js';

const SLOW = 300_000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-video-reuse-'));
const log = path.join(dir, 'runs.log');
let f: Fixture;
const saved = { ffmpeg: process.env.FFMPEG_PATH, ffprobe: process.env.FFPROBE_PATH };

beforeAll(async () => {
  f = await fixture('video-reuse', { seed: 11 });
  for (const tool of ['ffmpeg', 'ffprobe'] as const) {
    const real = await ffmpegBinary(tool);
    const wrapper = path.join(dir, tool);
    fs.writeFileSync(wrapper, `#!/bin/sh\necho ${tool} >> '${log}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
    process.env[tool === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'] = wrapper;
  }
}, SLOW);
afterAll(() => {
  process.env.FFMPEG_PATH = saved.ffmpeg;
  process.env.FFPROBE_PATH = saved.ffprobe;
  if (saved.ffmpeg === undefined) delete process.env.FFMPEG_PATH;
  if (saved.ffprobe === undefined) delete process.env.FFPROBE_PATH;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The ffmpeg and ffprobe runs since the last call. */
function runs(): string[] {
  const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  fs.rmSync(log, { force: true });
  return lines;
}

describe.each(['cpu', 'wasm'] as const)('a video read before, on %s', (device) => {
  it('is neither decoded nor encoded again by a new conversation or a stateless request, and gives the same tokens', async () => {
    const model = await LlavaMini.fromPretrained(f.model, { device });
    try {
      runs();
      const q = 'What happens?';
      const first = await model.ask({ video: VIDEO }, q, { maxNewTokens: 6 }).done();
      expect(runs()).toEqual(['ffprobe', 'ffmpeg']);
      const encoded = model.vision.encoderRuns;
      // The same bytes under another name: a stateless request, then a new conversation with a follow-up.
      const copy = path.join(dir, `copy-${device}.mp4`);
      fs.copyFileSync(VIDEO, copy);
      const again = await model.ask({ video: copy }, q, { maxNewTokens: 6 }).done();
      const chat = model.chat({ video: copy });
      const turn1 = await chat.ask(q, { maxNewTokens: 6 }).done();
      const turn2 = await chat.ask('And then?', { maxNewTokens: 6 }).done();
      chat.dispose();
      expect(runs(), 'no ffprobe or ffmpeg run').toEqual([]);
      expect(model.vision.encoderRuns, 'no frame encoded').toBe(encoded);
      expect(again.ids).toEqual(first.ids);
      expect(turn1.ids).toEqual(first.ids);
      // The prompt's opening (text before the video, one vision token per frame) was prefilled once, then forked.
      expect(model.parts.openings.stats).toMatchObject({ held: 1, hits: 2, misses: 1 });
      // The follow-up, as a replay from its history with the picture cache off, decoding and encoding everything.
      const fresh = await LlavaMini.fromPretrained(f.model, { device, pictureCacheBytes: 0 });
      try {
        const replay = await fresh.ask({ video: VIDEO }, 'And then?', { maxNewTokens: 6, history: [{ user: q, assistant: turn1.text }] }).done();
        expect(turn2.ids).toEqual(replay.ids);
        // Prefilled whole (nothing held with the cache off), the first question gives the same tokens.
        expect((await fresh.ask({ video: VIDEO }, q, { maxNewTokens: 6 }).done()).ids).toEqual(first.ids);
        expect(fresh.parts.openings.stats.held).toBe(0);
      } finally {
        await fresh.dispose();
      }
      runs();
      // Other bytes are another video: decoded (one byte changed at the end of the file).
      const changed = path.join(dir, `changed-${device}.mp4`);
      fs.writeFileSync(changed, Buffer.concat([fs.readFileSync(VIDEO), Buffer.from([0])]));
      await model.ask({ video: changed }, q, { maxNewTokens: 6 }).done();
      expect(runs()).toEqual(['ffprobe', 'ffmpeg']);
    } finally {
      await model.dispose();
    }
  }, SLOW);
});

describe('a video read before, whose frames have left the picture cache', () => {
  const device = 'cpu';
  it('is decoded again, with the same tokens', async () => {
    // A cache of one frame's size: the video's frames push each other out.
    const probe = await LlavaMini.fromPretrained(f.model, { device });
    await probe.ask({ video: VIDEO }, 'Size?', { maxNewTokens: 1 }).done();
    const frameBytes = probe.vision.pictures.stats.bytes / probe.vision.pictures.stats.entries;
    await probe.dispose();
    const model = await LlavaMini.fromPretrained(f.model, { device, pictureCacheBytes: Math.ceil(frameBytes) });
    try {
      runs();
      const a = await model.ask({ video: VIDEO }, 'What happens?', { maxNewTokens: 6 }).done();
      const b = await model.ask({ video: VIDEO }, 'What happens?', { maxNewTokens: 6 }).done();
      expect(runs()).toEqual(['ffprobe', 'ffmpeg', 'ffprobe', 'ffmpeg']);
      expect(b.ids).toEqual(a.ids);
    } finally {
      await model.dispose();
    }
  }, SLOW);
});
