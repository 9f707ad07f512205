// `--model ORG/NAME` and `llava-mini cache` as a user meets them, against the local hub of
// packages/pipeline/test/hub-server.ts (HF_ENDPOINT pointed at it): the first run downloads and
// converts, the second fetches no file, `cache ls` shows both caches and `cache rm` frees them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeTinyCheckpoint, writeTinyClip } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalHub, readRepoFolder } from '../../pipeline/test/hub-server.js';
import { ASSETS, spawnCli, waitFor } from './fixtures.js';

const REPO = 'ICTNLP/llava-mini-llama-3.1-8b';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-cli-hub-'));
const hub = new LocalHub();
let env: Record<string, string>;

beforeAll(async () => {
  await writeTinyCheckpoint(path.join(root, 'hf'), { seed: 7, std: 0.3, includeVision: false });
  await writeTinyClip(path.join(root, 'clip'), { seed: 7, std: 0.3 });
  hub.addCommit(REPO, readRepoFolder(path.join(root, 'hf')));
  hub.addCommit('openai/clip-vit-large-patch14-336', readRepoFolder(path.join(root, 'clip')));
  await hub.start();
  env = { HF_ENDPOINT: hub.endpoint, HF_HOME: path.join(root, 'hf-home'), LLAVA_MINI_CACHE: path.join(root, 'converted') };
});
afterAll(async () => {
  await hub.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

/** Runs the CLI without blocking this process's event loop, where the hub serves. */
async function run(...args: string[]) {
  const p = spawnCli(args, { env });
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

describe('--model with a hub id', () => {
  it('downloads and converts once, answers, then answers from the cache; cache ls and rm', async () => {
    const ask = ['ask', '--model', REPO, '--dtype', 'q4', '--image', path.join(ASSETS, 'house.png'), '--prompt', 'What is this?', '--max-new-tokens', '4', '--json', '--device', 'cpu'];
    const first = await run(...ask);
    expect(first.code, first.stderr).toBe(0);
    expect(hub.fileRequests().length).toBeGreaterThan(0);
    hub.log.length = 0;
    const second = await run(...ask);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).tokenIds).toEqual(JSON.parse(first.stdout).tokenIds);
    expect(hub.fileRequests()).toEqual([]);

    const ls = await run('cache', 'ls', '--json');
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout).map((e: { kind: string; repo: string; variant?: string }) => `${e.kind} ${e.repo} ${e.variant ?? ''}`.trim())).toEqual([
      `converted ${REPO} q4-cpu`,
      `download ${REPO}`,
      'download openai/clip-vit-large-patch14-336',
    ]);
    const rm = await run('cache', 'rm', REPO);
    expect(rm.stdout.trim().split('\n')).toHaveLength(2);
    expect((await run('cache', 'ls')).stdout).not.toContain(REPO);
  });

  it('a process killed mid-download leaves the partial file, and the next run resumes it with a Range request', async () => {
    const shard = readRepoFolder(path.join(root, 'hf')).find((f) => f.lfs) as { path: string; bytes: Buffer };
    const local = { ...env, HF_HOME: path.join(root, 'killed-home'), LLAVA_MINI_CACHE: path.join(root, 'killed-converted') };
    const blobs = path.join(local.HF_HOME, 'hub', 'models--ICTNLP--llava-mini-llama-3.1-8b', 'blobs');
    // The storage serves a blob by its sha256 (the CLIP repository has a model.safetensors too), and
    // the cache names it so: wait for this shard's partial, not another file's passing by.
    const oid = createHash('sha256').update(shard.bytes).digest('hex');
    const partial = () => (fs.existsSync(path.join(blobs, `${oid}.incomplete`)) ? `${oid}.incomplete` : undefined);
    const ask = ['ask', '--model', REPO, '--image', path.join(ASSETS, 'house.png'), '--prompt', 'What is this?', '--max-new-tokens', '2', '--device', 'cpu'];
    hub.slow.add(shard.path);
    const p = spawnCli(ask, { env: local });
    try {
      await waitFor('part of the shard on disk', () => {
        const f = partial();
        return f !== undefined && fs.statSync(path.join(blobs, f)).size > 0;
      });
    } finally {
      p.child.kill('SIGKILL');
      hub.slow.delete(shard.path);
    }
    await p.exited;
    const kept = fs.statSync(path.join(blobs, partial() as string)).size;
    expect(kept).toBeLessThan(shard.bytes.length);
    hub.log.length = 0;
    const p2 = spawnCli(ask, { env: local });
    expect(await p2.exited, p2.stderr()).toBe(0);
    const requests = hub.log.filter((r) => r.server === 'storage' && r.url.startsWith(`/blobs/${oid}`));
    expect(requests.map((r) => r.range)).toEqual([`bytes=${kept}-`]);
    expect(partial()).toBeUndefined();
  });

  it('a repository the hub does not have, or offline without the files, is one HUB line', async () => {
    const ask = ['ask', '--model', 'someone/elsewhere', '--image', path.join(ASSETS, 'house.png'), '--prompt', 'What is this?'];
    const missing = await run(...ask);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^llava-mini: HUB: someone\/elsewhere: no such repository or revision on the hub\n$/);
    const p = spawnCli(ask, { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(/^llava-mini: HUB: someone\/elsewhere: is not in the cache, and HF_HUB_OFFLINE=1 forbids downloading it\n$/);
  });
});
