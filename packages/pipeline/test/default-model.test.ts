// The CLI without --model: the bundled shapes model answers about the bundled picture, and
// `llava-mini eval` prints accuracy per question type as JSON and as a table.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultModelDir } from '../src/node.js';

const CLI = path.resolve(__dirname, '../dist/cli.js');
const IMAGE = path.resolve(__dirname, '../../../examples/assets/shapes.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-default-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0', TMPDIR: root } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the default model', () => {
  it('is models/llava-mini-shapes', () => {
    expect(defaultModelDir()).toBe(path.resolve(__dirname, '../../../models/llava-mini-shapes'));
  });

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
