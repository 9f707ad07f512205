// The CLI without --model: the bundled shapes model answers about the bundled picture (on the default
// device, 'auto', without a word about CUDA), and `llava-mini eval` prints accuracy per question type
// as JSON and as a table.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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

  it("ask with the default device ('auto') says nothing about CUDA", () => {
    const r = cli('ask', '--image', IMAGE, '--prompt', 'What color is the circle?');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('red');
    // Only the timing lines: no provider probe, no CUDA warning, no onnxruntime log.
    expect(r.stderr).not.toMatch(/cuda|warn|onnxruntime/i);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(3);
  });

  it('llava-mini eval reports accuracy per question type', () => {
    const json = cli('eval', '--count', '2', '--seed', '7', '--device', 'cpu', '--json');
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(Object.keys(report.perType)).toEqual(['color', 'shape', 'count', 'exists', 'side']);
    expect(report.questions).toBeGreaterThan(2);
    expect(report.overall.total).toBe(report.questions);
    const table = cli('eval', '--count', '2', '--seed', '7', '--device', 'cpu');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^type +accuracy/);
    expect(table.stdout).toMatch(/overall +\d+\.\d %/);
  });
});
