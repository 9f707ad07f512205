// Hub ids in Node, against a local hub (test/hub-server.ts) serving a tiny checkpoint in the
// release's layout (sharded, no CLIP weights, config naming openai/clip-vit-large-patch14-336) and
// a separate CLIP repository: the real download code through @huggingface/hub and fetch.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HubError } from '@llava-mini/core';
import { writeTinyCheckpoint, writeTinyClip } from '@llava-mini/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, fetchModelUrl, fetchPretrained, type HubSettings, hubSettings, LlavaMini, listCache, parseHubId, removeFromCache } from '../src/node.js';
import { LocalHub, readRepoFolder } from './hub-server.js';

const REPO = 'ICTNLP/llava-mini-llama-3.1-8b';
const CLIP = 'openai/clip-vit-large-patch14-336';
const GATED = 'someone/gated-llava-mini';
const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-hub-'));
const hub = new LocalHub();
let first = '';
let second = '';
const hf = path.join(root, 'hf');
const clip = path.join(root, 'clip');

beforeAll(async () => {
  await writeTinyCheckpoint(hf, { seed: 5, std: 0.3, includeVision: false, maxShardBytes: 400_000 });
  await writeTinyClip(clip, { seed: 5, std: 0.3 });
  const files = readRepoFolder(hf, { 'README.md': '---\nlicense: gpl-3.0\n---\n# tiny\n', '.gitattributes': '*.safetensors filter=lfs\n' });
  first = hub.addCommit(REPO, files);
  // A later commit on main: generation_config.json changed.
  const gen = files.map((f) => (f.path === 'generation_config.json' ? { ...f, bytes: Buffer.from(f.bytes.toString().replace('{', '{\n  "note": "v2",')) } : f));
  second = hub.addCommit(REPO, gen);
  hub.addCommit(CLIP, readRepoFolder(clip, { 'pytorch_model.bin': 'not wanted' }));
  hub.addCommit(GATED, files, { gated: true });
  await hub.start();
});
afterAll(async () => {
  await hub.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

function settings(name: string, o: Partial<HubSettings> = {}): HubSettings {
  return { endpoint: hub.endpoint, cacheDir: path.join(root, name, 'hub'), convertedDir: path.join(root, name, 'converted'), offline: false, ...o };
}

/** The token ids a model folder answers with. */
async function answerIds(dir: string): Promise<number[]> {
  const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
  try {
    return (await model.ask(IMAGE, 'What is this?', { maxNewTokens: 4 }).done()).ids;
  } finally {
    await model.dispose();
  }
}

describe('hub ids', () => {
  it('parses org/name[@revision] and leaves paths alone', () => {
    expect(parseHubId(REPO)).toEqual({ repo: REPO, revision: 'main' });
    expect(parseHubId(`${REPO}@v1.0`)).toEqual({ repo: REPO, revision: 'v1.0' });
    expect(parseHubId('./tiny-onnx')).toBeUndefined();
    expect(parseHubId('/abs/path')).toBeUndefined();
    expect(parseHubId('a/b/c')).toBeUndefined();
  });

  it('reads the environment as huggingface_hub does', () => {
    const home = path.join(root, 'env-home');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, 'token'), 'hf_from_login\n');
    expect(hubSettings({ HF_HOME: home, XDG_CACHE_HOME: '/xdg' })).toEqual({
      endpoint: 'https://huggingface.co',
      cacheDir: path.join(home, 'hub'),
      convertedDir: '/xdg/llava-mini',
      token: 'hf_from_login',
      offline: false,
    });
    const s = hubSettings({ HF_HOME: home, HF_HUB_CACHE: '/c', HF_TOKEN: 'hf_env', HF_ENDPOINT: 'https://mirror.example/', HF_HUB_OFFLINE: 'TRUE', LLAVA_MINI_CACHE: '/l' });
    expect(s).toEqual({ endpoint: 'https://mirror.example', cacheDir: '/c', convertedDir: '/l', token: 'hf_env', offline: true });
    expect(hubSettings({ HF_HOME: path.join(root, 'no-home'), HF_HUB_OFFLINE: '0' })).toMatchObject({ token: undefined, offline: false });
  });

  it('downloads to the hub cache layout, fetches the CLIP tower the config names, converts once, and answers as the local folders do', async () => {
    const s = settings('first');
    const events: { item?: string; done: number; total?: number }[] = [];
    const dir = await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: s, onProgress: (e) => e.task === 'download' && events.push(e) });
    expect(dir).toBe(path.join(s.convertedDir, 'ICTNLP--llava-mini-llama-3.1-8b', second, 'fp32-cpu'));
    const repoDir = path.join(s.cacheDir, 'models--ICTNLP--llava-mini-llama-3.1-8b');
    expect(fs.readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(second);
    const snapshot = path.join(repoDir, 'snapshots', second);
    expect(fs.lstatSync(path.join(snapshot, 'config.json')).isSymbolicLink()).toBe(true);
    expect(fs.readdirSync(snapshot).sort()).toEqual([...fs.readdirSync(hf), 'README.md'].sort()); // no .gitattributes
    // The converted folder's model card names the source, its commit and its license.
    const card = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
    expect(card).toMatch(/^---\nlicense: gpl-3.0\nbase_model: ICTNLP\/llava-mini-llama-3.1-8b\n/);
    expect(card).toContain(`at commit \`${second}\``);
    expect(fs.existsSync(path.join(s.cacheDir, 'models--openai--clip-vit-large-patch14-336', 'snapshots'))).toBe(true);
    expect(hub.fileRequests().some((r) => r.url.includes('pytorch_model.bin'))).toBe(false);
    // Progress in bytes, to the total of both repositories' files.
    const last = events.at(-1);
    expect(last?.done).toBe(last?.total);
    expect(events.length).toBeGreaterThan(2);

    const reference = path.join(root, 'reference-onnx');
    await convertCheckpoint(hf, reference, { clipDir: clip });
    expect(await answerIds(dir)).toEqual(await answerIds(reference));

    // Again: the hub is asked which commit main is, and nothing else.
    hub.log.length = 0;
    expect(await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: s })).toBe(dir);
    expect(hub.log.map((r) => r.url.split('?')[0])).toEqual([`/api/models/${REPO}/revision/main`]);

    // Offline: no request at all, from the cache.
    expect(await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: { ...s, offline: true } })).toBe(dir);
    expect(hub.log).toHaveLength(1);

    const listed = await listCache(s);
    expect(listed.map((e) => [e.kind, e.repo, e.variant])).toEqual([
      ['converted', REPO, 'fp32-cpu'],
      ['download', REPO, undefined],
      ['download', CLIP, undefined],
    ]);
    expect(removeFromCache(REPO, s)).toHaveLength(2);
    expect((await listCache(s)).map((e) => e.repo)).toEqual([CLIP]);
  });

  it('LlavaMini.fromPretrained takes a hub id, through the environment', async () => {
    const s = settings('env');
    const saved = { ...process.env };
    Object.assign(process.env, { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: s.cacheDir, LLAVA_MINI_CACHE: s.convertedDir });
    try {
      const model = await LlavaMini.fromPretrained(REPO, { device: 'cpu', dtype: 'q4' });
      expect((await model.ask(IMAGE, 'What is this?', { maxNewTokens: 2 }).done()).ids.length).toBeGreaterThan(0);
      await model.dispose();
      expect(fs.existsSync(path.join(s.convertedDir, 'ICTNLP--llava-mini-llama-3.1-8b', second, 'q4-cpu', 'manifest.json'))).toBe(true);
    } finally {
      process.env = saved;
    }
  });

  it('offline without a cache is a HubError, and asks nothing of the hub', async () => {
    const before = hub.log.length;
    const err = await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: settings('offline', { offline: true }) }).catch((e) => e);
    expect(err).toBeInstanceOf(HubError);
    expect(err.message).toMatch(/is not in the cache, and HF_HUB_OFFLINE=1/);
    expect(hub.log.length).toBe(before);
  });

  it('a revision pinned to a commit gets that commit', async () => {
    const s = settings('pinned');
    const dir = await fetchPretrained({ repo: REPO, revision: first }, { settings: s });
    expect(dir).toContain(first);
    const gen = fs.readFileSync(path.join(s.cacheDir, 'models--ICTNLP--llava-mini-llama-3.1-8b', 'snapshots', first, 'generation_config.json'), 'utf8');
    expect(gen).not.toContain('v2');
    expect(fs.existsSync(path.join(s.cacheDir, 'models--ICTNLP--llava-mini-llama-3.1-8b', 'refs', 'main'))).toBe(false);
  });

  it('resumes an interrupted download with a Range request instead of starting over', async () => {
    const s = settings('resume');
    const shard = readRepoFolder(hf).find((f) => f.lfs) as { path: string; bytes: Buffer };
    hub.cutAfter.set(shard.path, 100_000);
    hub.log.length = 0;
    const err = await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: s }).catch((e) => e);
    expect(err).toBeInstanceOf(HubError);
    expect(err.message).toMatch(/stopped at \d+ of \d+ bytes.*run again to resume/);
    const blobs = path.join(s.cacheDir, 'models--ICTNLP--llava-mini-llama-3.1-8b', 'blobs');
    const partial = fs.readdirSync(blobs).find((f) => f.endsWith('.incomplete')) as string;
    const kept = fs.statSync(path.join(blobs, partial)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(shard.bytes.length);

    await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: s });
    const ranged = hub.log.filter((r) => r.server === 'storage' && r.url.includes(encodeURIComponent(shard.path)));
    expect(ranged.map((r) => r.range)).toEqual([undefined, `bytes=${kept}-`]);
    expect(fs.readdirSync(blobs).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
  });

  it('waits while another live process holds a download, takes over the lock of a dead one, and two loads at once make one download', async () => {
    const s = settings('locked');
    const first = readRepoFolder(hf)[0] as { path: string; bytes: Buffer; lfs: boolean };
    const name = first.lfs ? createHash('sha256').update(first.bytes).digest('hex') : createHash('sha1').update(`blob ${first.bytes.length}\0`).update(first.bytes).digest('hex');
    const blobs = path.join(s.cacheDir, 'models--ICTNLP--llava-mini-llama-3.1-8b', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    const other = spawn('sleep', ['30']);
    fs.writeFileSync(path.join(blobs, `${name}.lock`), String(other.pid));
    hub.log.length = 0;
    let settled = false;
    const waiting = fetchPretrained({ repo: REPO, revision: 'main' }, { settings: s }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 1000));
    expect(settled).toBe(false);
    expect(hub.fileRequests()).toEqual([]);
    other.kill();
    const dir = await waiting;
    expect(fs.readdirSync(blobs).filter((f) => f.endsWith('.lock'))).toEqual([]);

    // Two loads of another cache at the same time (a server's workers): each file fetched once, one conversion.
    const t = settings('together');
    hub.log.length = 0;
    const [a, b] = await Promise.all([0, 1].map(() => fetchPretrained({ repo: REPO, revision: 'main' }, { settings: t })));
    expect(a).toBe(b);
    expect(a.replace(t.convertedDir, '')).toBe(dir.replace(s.convertedDir, ''));
    const resolves = hub.fileRequests().filter((r) => r.server === 'hub').map((r) => r.url);
    expect(resolves.length).toBe(new Set(resolves).size);
  });

  it('refuses a file whose sha256 is not the hub listing, and keeps nothing of it', async () => {
    const s = settings('corrupt');
    const shard = readRepoFolder(hf).find((f) => f.lfs) as { path: string };
    hub.corrupt.add(shard.path);
    try {
      const err = await fetchPretrained({ repo: REPO, revision: 'main' }, { settings: s }).catch((e) => e);
      expect(err).toBeInstanceOf(HubError);
      expect(err.code).toBe('HUB');
      expect(err.message).toContain(`${shard.path}: its sha256 is`);
      const blobs = path.join(s.cacheDir, 'models--ICTNLP--llava-mini-llama-3.1-8b', 'blobs');
      expect(fs.readdirSync(blobs).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
      expect(fs.existsSync(s.convertedDir)).toBe(false);
    } finally {
      hub.corrupt.delete(shard.path);
    }
  });

  it('a gated repository: 401 without a token; with one, the token goes to the hub and never to the storage', async () => {
    const denied = await fetchPretrained({ repo: GATED, revision: 'main' }, { settings: settings('gated') }).catch((e) => e);
    expect(denied).toBeInstanceOf(HubError);
    expect(denied.status).toBe(401);
    expect(denied.message).toMatch(/HF_TOKEN/);

    hub.log.length = 0;
    await fetchPretrained({ repo: GATED, revision: 'main' }, { settings: settings('gated-token', { token: hub.token }) });
    const toHub = hub.log.filter((r) => r.server === 'hub' && !r.url.includes('clip-vit'));
    const toStorage = hub.log.filter((r) => r.server === 'storage');
    expect(toHub.length).toBeGreaterThan(2);
    expect(toHub.every((r) => r.authorization === `Bearer ${hub.token}`)).toBe(true);
    expect(toStorage.length).toBeGreaterThan(0);
    expect(toStorage.every((r) => r.authorization === undefined)).toBe(true);
  });

  it('a repository holding a converted folder is loaded as downloaded, with nothing converted', async () => {
    const converted = path.join(root, 'converted-q4');
    // Small chunks, so the repository holds weights in several files per graph as a large model's does.
    const manifest = await convertCheckpoint(hf, converted, { clipDir: clip, dtype: 'q4', maxChunkBytes: 300_000 });
    expect(manifest.stages.llm.files.map((f) => f.name)).toContain('llm.onnx.data.1');
    hub.addCommit('someone/llava-mini-tiny-onnx', readRepoFolder(converted));
    const s = settings('onnx-repo');
    const dir = await fetchPretrained({ repo: 'someone/llava-mini-tiny-onnx', revision: 'main' }, { settings: s });
    expect(dir).toContain(path.join('models--someone--llava-mini-tiny-onnx', 'snapshots'));
    expect(fs.existsSync(s.convertedDir)).toBe(false);
    expect(await answerIds(dir)).toEqual(await answerIds(converted));
  });

  it('the URL of a converted folder: downloaded and checked once, then only its manifest is asked for; offline from the cache', async () => {
    const converted = path.join(root, 'converted-url');
    await convertCheckpoint(hf, converted, { clipDir: clip });
    hub.addCommit('someone/url-folder', readRepoFolder(converted));
    const url = `${hub.endpoint}/someone/url-folder/resolve/main`;
    const s = settings('url');
    const dir = await fetchModelUrl(url, { settings: s });
    expect(await answerIds(dir)).toEqual(await answerIds(converted));
    hub.log.length = 0;
    expect(await fetchModelUrl(`${url}/`, { settings: s })).toBe(dir);
    expect(hub.log.map((r) => r.url)).toEqual(['/someone/url-folder/resolve/main/manifest.json']);
    expect(await fetchModelUrl(url, { settings: { ...s, offline: true } })).toBe(dir);
    expect(hub.log).toHaveLength(1);

    const graph = readRepoFolder(converted).find((f) => f.path.endsWith('.onnx')) as { path: string };
    hub.corrupt.add(graph.path);
    try {
      const err = await fetchModelUrl(url, { settings: settings('url-corrupt') }).catch((e) => e);
      expect(err).toBeInstanceOf(HubError);
      expect(err.message).toContain(`${graph.path}: its sha256 is`);
    } finally {
      hub.corrupt.delete(graph.path);
    }
  });

  it('a repository that does not exist is a HubError with status 404', async () => {
    const err = await fetchPretrained({ repo: 'nobody/nothing', revision: 'main' }, { settings: settings('missing') }).catch((e) => e);
    expect(err).toBeInstanceOf(HubError);
    expect(err.status).toBe(404);
  });
});
