// A conversion onto a disk that fills up: a typed error naming the folder and how far it got, and
// nothing left on that disk. The disk is a real 256 kB tmpfs where this machine lets us mount one
// (root, as CI runs); elsewhere the test is skipped.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileError } from '@llava-mini/core';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { afterAll, describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../src/node.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-convert-full-'));
const disk = path.join(root, 'disk');
fs.mkdirSync(disk);
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', disk], { stdio: 'ignore' });
  mounted = true;
} catch {
  // Not root, or no mount here.
}
afterAll(() => {
  if (mounted) execFileSync('umount', [disk]);
  fs.rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!mounted)('convert onto a full disk', () => {
  it('fails with a FileError naming the output folder and the space, leaving nothing behind', async () => {
    const hf = path.join(root, 'hf');
    await writeTinyCheckpoint(hf);
    const out = path.join(disk, 'model');
    const err = await convertCheckpoint(hf, out).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FileError);
    expect((err as Error).message).toMatch(new RegExp(`^${out}: no space left on the device: the conversion stopped after [0-9.]+ GB of the converted model, with 0\\.00 GB free`));
    expect((err as Error).message.split('\n')).toHaveLength(1);
    expect(fs.readdirSync(disk)).toEqual([]);
  });
});
