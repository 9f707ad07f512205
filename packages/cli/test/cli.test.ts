import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { decodeModel } from '@llava-mini/core';
import { ASSETS, cli as run } from './fixtures.js';

const IMAGE = path.join(ASSETS, 'house.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-'));
const model = inject('modelDir');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const cli = (...args: string[]) => run(args);
const cliWithInput = (input: string, ...args: string[]) => run(args, { input });

describe('llava-mini CLI', () => {
  it('ask --json prints one object with prompt ids (-200 at the image), generated ids, text and timings', () => {
    const r = cli('ask', '--model', model, '--image', IMAGE, '--prompt', 'What is in this picture?', '--json', '--max-new-tokens', '4', '--device', 'cpu');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.promptTokenIds.filter((id: number) => id === -200)).toHaveLength(1);
    expect(out.promptTokenIds.slice(0, 2)).toEqual([512, 512]); // the reference's two BOS tokens
    expect(out.tokenIds.length).toBeLessThanOrEqual(4);
    expect(typeof out.text).toBe('string');
    for (const key of ['encoderMs', 'compressorMs', 'prefusionMs', 'timeToFirstTokenMs', 'decodeTokensPerSecond']) expect(out.timings[key]).toBeTypeOf('number');
  });

  it('ask streams the answer, then prints per-stage timings', () => {
    const r = cli('ask', '--model', model, '--image', IMAGE, '--prompt', 'Describe it.', '--max-new-tokens', '3', '--device', 'wasm');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/encoder [\d.]+ ms \| compressor [\d.]+ ms/);
    expect(r.stderr).toMatch(/time to first token/);
  });

  it('chat answers each piped question in turn and stops at an empty line', () => {
    const r = cliWithInput('What is this?\nAnd its colour?\n\nnever asked\n', 'chat', '--model', model, '--image', IMAGE, '--max-new-tokens', '3', '--device', 'cpu');
    expect(r.code).toBe(0);
    const turns = r.stdout.split('\n> ');
    // The greeting, two answers, then the prompt the empty line closed ('never asked' is not answered).
    expect(turns).toHaveLength(4);
    expect(turns[3].trim()).toBe('');
  });

  it('init-tiny and convert write a model that ask can use', () => {
    const hf = path.join(root, 'hf');
    expect(cli('init-tiny', hf, '--seed', '3').code).toBe(0);
    const out = path.join(root, 'converted');
    const c = cli('convert', hf, '--out', out, '--dtype', 'q8');
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/llm q8/);
    expect(cli('ask', '--model', out, '--image', IMAGE, '--prompt', 'Hi', '--json', '--max-new-tokens', '2').code).toBe(0);
    // --block-size reaches the LLM's MatMulNBits nodes.
    const q4 = path.join(root, 'converted-q4-128');
    expect(cli('convert', hf, '--out', q4, '--dtype', 'q4', '--block-size', '128').code).toBe(0);
    const blocks = decodeModel(new Uint8Array(fs.readFileSync(path.join(q4, 'llm.onnx'))))
      .graph.node.filter((n) => n.op_type === 'MatMulNBits')
      .map((n) => n.attribute.find((a) => a.name === 'block_size')?.i);
    expect(blocks.length).toBeGreaterThan(0);
    expect(new Set(blocks)).toEqual(new Set([128]));
  });

  it('bad input: a one-line message and a non-zero exit', () => {
    const cases: [string[], number, RegExp][] = [
      [['ask', '--model', model, '--image', path.join(root, 'missing.png'), '--prompt', 'x'], 1, /^llava-mini: IMAGE: .*missing\.png/],
      [['ask', '--model', path.join(root, 'nowhere'), '--image', IMAGE, '--prompt', 'x'], 1, /^llava-mini: MODEL_FILES: /],
      [['ask', '--model', model, '--video', IMAGE.replace('house.png', 'nope.mp4'), '--prompt', 'x'], 1, /^llava-mini: VIDEO: /],
      // Longer than the KV cache (8192), and longer than the config's tokenizer_model_max_length (4096) only.
      [['ask', '--model', model, '--image', IMAGE, '--prompt', 'word '.repeat(5000)], 1, /^llava-mini: PROMPT_TOO_LONG: .*context window holds 8192/],
      [['ask', '--model', model, '--image', IMAGE, '--prompt', 'word '.repeat(1500)], 1, /^llava-mini: PROMPT_TOO_LONG: the prompt with 1 picture.* holds 4096/],
      [['ask', '--model', model, '--image', IMAGE, '--prompt', 'x', '--temperature', '-1'], 1, /^llava-mini: INVALID_OPTION: temperature/],
      [['convert', model, '--out', path.join(root, 'x')], 1, /^llava-mini: MODEL_FILES: .*no model.safetensors or model.safetensors.index.json/],
      [['ask', '--model', model, '--prompt', 'x', '--dtype', 'int3'], 2, /^error: option .* argument 'int3' is invalid/],
      [['convert', model, '--out', path.join(root, 'x'), '--block-size', '100'], 2, /^error: option .* argument '100' is invalid/],
      [['convert', model, '--out', path.join(root, 'x'), '--block-size', '128'], 1, /^llava-mini: INVALID_OPTION: --block-size applies to q8 and q4 weights/],
    ];
    for (const [args, code, message] of cases) {
      const r = cli(...args);
      expect({ args: args.slice(0, 1), code: r.code }).toEqual({ args: args.slice(0, 1), code });
      expect(r.stderr.split('\n').filter((line) => message.test(line))).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});
