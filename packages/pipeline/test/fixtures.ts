import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyCheckpoint, type TinyOptions } from '@llava-mini/tiny';
import { afterAll } from 'vitest';
import { convertCheckpoint } from '../src/node.js';

export const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
export const VIDEO = path.resolve(__dirname, '../../../examples/assets/clip.mp4');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-pipeline-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

export interface Fixture {
  ckpt: string;
  model: string;
  config: Record<string, any>;
  stopIds: number[];
}

/** A tiny checkpoint written and converted into this test file's temp folder. */
export async function fixture(name: string, options: TinyOptions): Promise<Fixture> {
  const ckpt = path.join(root, `${name}-hf`);
  const model = path.join(root, `${name}-onnx`);
  // std 0.3: at the default 0.02 (or 0.1) the tiny model repeats one token whatever it sees; at 0.3 its output follows the input, so a wrong step changes the tokens.
  const info = await writeTinyCheckpoint(ckpt, { seed: 7, std: 0.3, ...options });
  await convertCheckpoint(ckpt, model);
  const gen = JSON.parse(fs.readFileSync(path.join(ckpt, 'generation_config.json'), 'utf8'));
  return { ckpt, model, config: info.config as Record<string, any>, stopIds: gen.eos_token_id };
}
