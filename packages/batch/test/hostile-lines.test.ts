// A jobs file line nested 100,000 deep (JSON.parse takes it) is refused when the file is read: its
// result would echo the metadata, and the queue hands each line to Redis, both recursively.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readJobsFile } from '../src/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-batch-hostile-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it('refuses a line nesting more than 100 levels, naming the line, and reads 100', async () => {
  const nest = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  const file = path.join(dir, 'jobs.jsonl');
  fs.writeFileSync(file, `{"id": 1, "image": "a.png", "question": "?", "metadata": ${nest(99)}}\n{"id": 2, "image": "a.png", "question": "?", "metadata": ${nest(100_000)}}\n`);
  await expect(readJobsFile(file)).rejects.toThrow(`${file}:2: nests arrays and objects more than 100 levels deep`);
  fs.writeFileSync(file, `{"id": 1, "image": "a.png", "question": "?", "metadata": ${nest(99)}}\n`);
  expect((await readJobsFile(file)).lines).toHaveLength(1);
});
