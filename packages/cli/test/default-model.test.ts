// The CLI without --model: the bundled shapes model answers about the bundled picture (on the default
// device, 'auto', without a word about CUDA; freely and under a JSON schema), and `llava-mini eval`
// prints accuracy per question type (pictures, video, follow-ups) as JSON and as tables.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { demoScene, SCENE_QUESTION, sceneAnswer, writeDataset } from '@llava-mini/shapes';
import { afterAll, describe, expect, it } from 'vitest';
import { ASSETS, cli as run } from './fixtures.js';

const IMAGE = path.join(ASSETS, 'shapes.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-default-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cli = (...args: string[]) => run(args, { env: { TMPDIR: root } });

describe('the default model', () => {
  it.each([
    ['What color is the circle?', 'red'],
    ['What shape is the blue one?', 'square'],
    ['How many shapes are there?', '3'],
    ['Is there a green triangle?', 'yes'],
  ])('answers "%s" about examples/assets/shapes.png with %s', (question, answer) => {
    const r = cli('ask', '--image', IMAGE, '--prompt', question, '--device', 'cpu');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(answer);
  });

  it('--max-new-tokens counts the answer alone: the assistant header the model writes is outside it', () => {
    const r = cli('ask', '--image', IMAGE, '--prompt', 'What color is the circle?', '--max-new-tokens', '1', '--json', '--device', 'cpu');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.text).toBe('red');
    expect(out.finishReason).toBe('length');
    // The model wrote its header (<|start_header_id|>assistant<|end_header_id|>\n\n) and one answer token.
    expect(out.tokenIds.length).toBeGreaterThan(1);
  });

  it('ask --json-schema FILE: the answer is JSON the schema allows; a schema that is not JSON, or one the engine refuses, is a one-line error', () => {
    const schema = path.join(root, 'color.json');
    fs.writeFileSync(schema, JSON.stringify({ type: 'object', properties: { answer: { enum: ['red', 'green', 'blue'] } }, required: ['answer'] }));
    const r = cli('ask', '--image', IMAGE, '--prompt', 'What color is the circle?', '--json-schema', schema, '--device', 'cpu');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ answer: 'red' });
    const broken = path.join(root, 'broken.json');
    fs.writeFileSync(broken, '{ "type": ');
    const refused = path.join(root, 'refused.json');
    fs.writeFileSync(refused, '{ "type": "bogus" }');
    for (const [file, message] of [[broken, /^llava-mini: INVALID_OPTION: --json-schema .*broken\.json is not JSON/], [refused, /^llava-mini: INVALID_OPTION: the JSON schema cannot be compiled into a grammar: Unsupported type "bogus"$/]] as const) {
      const bad = cli('ask', '--image', IMAGE, '--prompt', 'x', '--json-schema', file, '--device', 'cpu');
      expect(bad.code).toBe(1);
      expect(bad.stderr.split('\n').filter((line) => message.test(line))).toHaveLength(1);
    }
  });

  it('ask --json-schema with the node-json example\'s scene schema: the whole scene of the picture, right (issue 24, item 5)', () => {
    const schema = path.join(ASSETS, '..', 'node-json', 'scene.schema.json');
    const r = cli('ask', '--image', IMAGE, '--prompt', SCENE_QUESTION, '--json-schema', schema, '--max-new-tokens', '200', '--device', 'cpu');
    expect(r.code, r.stderr).toBe(0);
    // The truth comes from the scene the picture was drawn from, not from a model's answer.
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(sceneAnswer(demoScene())));
  });

  it("ask with the default device ('auto') says nothing about CUDA", () => {
    const r = cli('ask', '--image', IMAGE, '--prompt', 'What color is the circle?');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('red');
    // Only the timing lines: no provider probe, no CUDA warning, no onnxruntime log.
    expect(r.stderr).not.toMatch(/cuda|warn|onnxruntime/i);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(3);
  });

  it('llava-mini eval reports pictures, video and follow-ups per question type, as JSON and as tables', () => {
    const file = path.join(root, 'answers.jsonl');
    const json = cli('eval', '--count', '2', '--seed', '7', '--device', 'cpu', '--json', '--answers', file);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(Object.keys(report.sections)).toEqual(['pictures', 'video', 'followups']);
    const { pictures, video, followups } = report.sections;
    // overall, perType and questions at the top are the pictures section's, as before there were sections.
    expect(Object.keys(report.perType)).toEqual(['color', 'shape', 'count', 'exists', 'side', 'vertical', 'scene']);
    expect(report.overall).toEqual(pictures.overall);
    expect(report.questions).toBe(pictures.questions);
    expect(pictures.overall.total).toBe(pictures.questions);
    expect(Object.keys(video.perType)).toEqual(['motion', 'moves', 'count']);
    expect(video.overall.total).toBe(video.questions);
    expect(report.videoData).toMatch(/clips-seed8-n2$/);

    // Every answer, written as JSON lines: the clips asked as videos, three questions a conversation.
    const answers = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(answers.filter((a) => a.section === 'video').every((a) => /\.(mp4|webm)$/.test(a.video) && a.image === undefined)).toBe(true);
    const asked = answers.filter((a) => a.section === 'followups');
    expect(asked).toHaveLength(followups.questions);
    expect(new Set(asked.filter((a) => a.turn === 0).map((a) => a.video ?? a.image)).size).toBe(4);
    // Follow-ups score turns 1 and 2; asked first is the same questions from the pictures and video sections.
    const later = asked.filter((a) => a.turn > 0);
    expect(followups.overall).toMatchObject({ total: later.length, correct: later.filter((a) => a.correct).length });
    const first = new Map(answers.filter((a) => a.section !== 'followups').map((a) => [`${a.video ?? a.image}\n${a.question}`, a.correct]));
    expect(followups.askedFirst.overall).toMatchObject({ total: later.length, correct: later.filter((a) => first.get(`${a.video ?? a.image}\n${a.question}`)).length });
    expect(Object.keys(followups.askedFirst.perType)).toEqual(Object.keys(followups.perType));

    // The tables, from the data sets the JSON run wrote; --no-video leaves the clips out, follow-ups included.
    const table = cli('eval', '--data', report.data, '--video-data', report.videoData, '--device', 'cpu');
    expect(table.code, table.stderr).toBe(0);
    const tables = table.stdout.split('\n\n');
    expect(tables.map((t) => t.split('\n')[0])).toEqual([expect.stringMatching(/^pictures +accuracy/), expect.stringMatching(/^video +accuracy/), expect.stringMatching(/^followups +accuracy +correct \/ total +asked first$/)]);
    for (const t of tables) expect(t).toMatch(/^overall +\d+\.\d %/m);
    expect(tables[2]).toMatch(/^overall +\d+\.\d % +\d+ \/ \d+ +\d+\.\d %$/m);
    const pics = cli('eval', '--data', report.data, '--no-video', '--device', 'cpu');
    expect(pics.code, pics.stderr).toBe(0);
    expect(pics.stdout.split('\n\n').map((t) => t.split(' ')[0])).toEqual(['pictures', 'followups']);
    expect(pics.stdout).not.toMatch(/^(motion|moves) /m);
  });

  it('llava-mini eval refuses a data set under the other flag, and --video-data with --no-video, before any work', async () => {
    const [pictures, clips] = [path.join(root, 'one-picture'), path.join(root, 'one-clip')];
    await writeDataset(pictures, { count: 1, seed: 3 });
    await writeDataset(clips, { count: 1, seed: 3, clips: true });
    for (const [args, message] of [
      [['--data', clips], /holds clips: pass it as --video-data/],
      [['--video-data', pictures], /holds pictures: pass it as --data/],
      [['--video-data', clips, '--no-video'], /--video-data and --no-video cannot go together/],
      [['--video-data', path.join(root, 'none')], /--video-data .*: no scenes\.jsonl there \(write one with llava-mini-shapes --clips\)/],
    ] as const) {
      const r = cli('eval', ...args, '--device', 'cpu');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^llava-mini: INVALID_OPTION: .*${message.source}`));
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});
