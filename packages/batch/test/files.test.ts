import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bullJobId, parseJob, readJobsFile, resolvePaths, ResultLog } from '../src/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-batch-files-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const file = (text: string) => {
  const f = path.join(root, `f${n++}.jsonl`);
  fs.writeFileSync(f, text);
  return f;
};

describe('jobs file', () => {
  it('resolves relative paths against its own folder and keeps absolute ones', async () => {
    const f = file('{"id":"a","image":"p/1.png","question":"q"}\n\n{"id":7,"images":["x.png","/abs/y.png"],"questions":["a","b"]}\n{"id":"v","video":"v.mp4","question":"q"}\n');
    const jobs = await readJobsFile(f);
    expect(jobs.lines.map((l) => l.line)).toEqual([1, 3, 4]);
    const parsed = jobs.lines.map((l) => parseJob(resolvePaths(l.raw, jobs.baseDir)));
    expect(parsed[0]).toEqual({ id: 'a', input: path.join(root, 'p/1.png'), questions: ['q'], several: false });
    expect(parsed[1]).toEqual({ id: 7, input: [path.join(root, 'x.png'), '/abs/y.png'], questions: ['a', 'b'], several: true });
    expect(parsed[2].input).toEqual({ video: path.join(root, 'v.mp4') });
    const kept = resolvePaths({ id: 1, images: ['data:image/png;base64,AAAA', 'file:///a/b.png'], question: 'q' }, root);
    expect(parseJob(kept).input).toEqual(['data:image/png;base64,AAAA', 'file:///a/b.png']);
  });

  it('refuses a line without a usable id before any work, naming the line', async () => {
    await expect(readJobsFile(file('{"id":"a","image":"x","question":"q"}\n{"image":"x"}\n'))).rejects.toThrow(/f\d+\.jsonl:2: has no "id"/);
    await expect(readJobsFile(file('{"id":"a"}\n{"id":"a"}\n'))).rejects.toThrow(/:2: id "a" is already used on line 1/);
    await expect(readJobsFile(file('{"id":1}\n{"id":"1"}\n'))).rejects.toThrow(/already used/);
    await expect(readJobsFile(file('{"id":"a"\n'))).rejects.toThrow(/:1: not a JSON line/);
    await expect(readJobsFile(file('[1]\n'))).rejects.toThrow(/:1: is not a JSON object/);
    await expect(readJobsFile(path.join(root, 'none.jsonl'))).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  });

  it('a wrong job is a typed error for that job', () => {
    const bad: [unknown, RegExp][] = [
      [{ id: 1, question: 'q' }, /exactly one of "image", "images" or "video", got none/],
      [{ id: 1, image: '/a', video: '/b', question: 'q' }, /got image and video/],
      [{ id: 1, image: '/a' }, /exactly one of "question" or "questions"/],
      [{ id: 1, image: '/a', question: '' }, /"question" must be a non-empty string/],
      [{ id: 1, images: [], question: 'q' }, /"images" must be a non-empty array/],
      [{ id: 1, images: ['/a', 3], question: 'q' }, /"images\[1\]" must be a file path/],
      [{ id: 1, image: 'https://example.com/a.png', question: 'q' }, /must be a file path or a data: URL; https: URLs are not fetched/],
      [{ id: 1, video: 'data:video/mp4;base64,AAAA', question: 'q' }, /"video" must be a file path; data: URLs are not fetched/],
      [{ id: 1, imgae: '/a', question: 'q' }, /unknown field "imgae"/],
    ];
    for (const [raw, message] of bad) expect(() => parseJob(raw as never)).toThrow(message);
  });

  it('maps job ids to BullMQ ids without collisions (no integers, no colons)', () => {
    const ids = ['a1', 17, '17', 'x:y', 'i-a1', 'b64', 'é'];
    const mapped = ids.map(bullJobId);
    expect(mapped.slice(0, 3)).toEqual(['i-a1', 'i-17', 'i-17']);
    for (const m of mapped) expect(m).not.toMatch(/:|^\d+$/);
    expect(new Set(mapped.filter((_, i) => i !== 2)).size).toBe(ids.length - 1);
  });
});

describe('results file', () => {
  const line = (id: string) => JSON.stringify({ id, answer: 'x', finishReason: 'stop', usage: {}, timings: {} });

  it('cuts a torn last line off, so the next append starts clean', async () => {
    const f = file(`${line('a')}\n${line('b')}\n{"id":"c","ans`);
    const log = await ResultLog.open(f);
    expect(log.recovery.tornBytes).toBe('{"id":"c","ans'.length);
    expect(log.has('a') && log.has('b') && !log.has('c')).toBe(true);
    await log.append([JSON.parse(line('c'))]);
    await log.close();
    expect(fs.readFileSync(f, 'utf8')).toBe(`${line('a')}\n${line('b')}\n${line('c')}\n`);
  });

  it('keeps a complete last result that only lost its newline', async () => {
    const f = file(`${line('a')}\n${line('b')}`);
    const log = await ResultLog.open(f);
    expect(log.recovery).toMatchObject({ tornBytes: 0, done: 2 });
    await log.close();
    expect(fs.readFileSync(f, 'utf8')).toBe(`${line('a')}\n${line('b')}\n`);
  });

  it('never writes an id twice, and refuses a file damaged in the middle', async () => {
    const f = file(`${line('a')}\n`);
    const log = await ResultLog.open(f);
    await Promise.all([log.append([JSON.parse(line('a')), JSON.parse(line('b'))]), log.append([JSON.parse(line('b'))])]);
    await log.close();
    expect(fs.readFileSync(f, 'utf8')).toBe(`${line('a')}\n${line('b')}\n`);
    await expect(ResultLog.open(file(`${line('a')}\nnot json\n${line('b')}\n`))).rejects.toThrow(/:2: not a result line/);
  });

  it('retryErrors drops error lines atomically', async () => {
    const err = JSON.stringify({ id: 'e', error: { code: 'IMAGE', message: 'm' } });
    const f = file(`${line('a')}\n${err}\n`);
    const log = await ResultLog.open(f, { retryErrors: true });
    expect(log.recovery.droppedErrors).toBe(1);
    expect(log.has('e')).toBe(false);
    await log.close();
    expect(fs.readFileSync(f, 'utf8')).toBe(`${line('a')}\n`);
  });

  it('one writer at a time: a second open is refused, a dead owner’s lock is taken over', async () => {
    const f = file('');
    const log = await ResultLog.open(f);
    await expect(ResultLog.open(f)).rejects.toThrow(/is being written by process \d+/);
    await log.close();
    fs.writeFileSync(`${f}.lock`, `${os.hostname()} 2147483646`);
    await (await ResultLog.open(f)).close();
    expect(fs.existsSync(`${f}.lock`)).toBe(false);
  });
});
