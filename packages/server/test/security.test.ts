// The server's security basics against the tricks that beat them elsewhere: paths that climb out of
// --allowed-media-path (.., symlinks, encoded dots, a sibling with the same prefix, other case), file
// contents and API keys echoed in errors or logs, and keys that differ in length.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { HttpError } from '../src/errors.js';
import { startServer, type ServerHandle } from '../src/index.js';
import { resolveMedia } from '../src/media.js';

const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'llava-security-')));
const allowed = path.join(root, 'Allowed');
const outside = path.join(root, 'outside');
const SECRET = 'the-private-words-of-a-file';
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  for (const d of [allowed, outside, `${allowed}-evil`, path.join(allowed, 'sub')]) fs.mkdirSync(d, { recursive: true });
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
  for (const p of [path.join(allowed, 'img.png'), path.join(outside, 'secret.png'), path.join(`${allowed}-evil`, 'x.png')]) fs.writeFileSync(p, png);
  fs.writeFileSync(path.join(allowed, 'notes.png'), `${SECRET}\n`);
  fs.symlinkSync(path.join(outside, 'secret.png'), path.join(allowed, 'link.png'));
  fs.symlinkSync(outside, path.join(allowed, 'dirlink'));
  fs.symlinkSync(path.join(allowed, 'img.png'), path.join(allowed, 'sub', 'inner-link.png'));
});

const media = { maxImages: 8, maxImagePixels: 1 << 20, allowedMediaPaths: [allowed] };
async function code(url: string, kind: 'image' | 'video' = 'image'): Promise<string> {
  const param = 'messages[0].content[0].image_url.url';
  try {
    const r = await resolveMedia([{ kind, source: url, param }], media, undefined);
    await r.cleanup();
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    const api = (err as HttpError).api;
    expect(api).toMatchObject({ status: 400, param });
    expect(api.message).not.toContain(SECRET);
    return api.code as string;
  }
}

describe('--allowed-media-path', () => {
  it('reads files under the folder, by any spelling that stays inside it', async () => {
    for (const p of [`${allowed}/img.png`, `${allowed}/./sub/../img.png`, `${allowed}//img.png`, `file://${allowed}/img.png`, `${allowed}/sub/inner-link.png`]) expect(await code(p), p).toBe('ok');
  });

  it('refuses .., symlinks out, encoded dots, a sibling of the same prefix, other case, and the folder itself', async () => {
    const outs = [
      `${allowed}/../outside/secret.png`,
      `${allowed}/sub/../../outside/secret.png`,
      `${allowed}/link.png`,
      `${allowed}/dirlink/secret.png`,
      `file://${allowed}/%2e%2e/outside/secret.png`,
      `file://${allowed}/%2E%2E/outside/secret.png`,
      `${allowed}-evil/x.png`,
      `${root}/ALLOWED/img.png`,
      `${root}/allowed/img.png`,
      allowed,
      '/etc/passwd',
    ];
    for (const p of outs) expect(await code(p), p).toBe('media_path_not_allowed');
    for (const p of [`${allowed}/link.png`, `${allowed}/dirlink/secret.png`]) expect(await code(p, 'video'), p).toBe('media_path_not_allowed');
  });

  it('answers the same for a path outside that exists and one that does not, so the disk cannot be probed', async () => {
    const errs = await Promise.all(
      [`${outside}/secret.png`, `${outside}/nothing-here.png`].map((p) =>
        resolveMedia([{ kind: 'image', source: p, param: 'p' }], media, undefined).catch((e: HttpError) => e.api.message.replace(p, 'P')),
      ),
    );
    expect(errs[0]).toBe(errs[1]);
  });

  it("a file that is not an image is refused without its content in the message", async () => {
    expect(await code(`${allowed}/notes.png`)).toBe('invalid_image');
  });
});

describe('the API key', () => {
  const KEY = 'sk-a-long-and-secret-server-key';
  let server: ServerHandle;
  const logs: string[] = [];

  beforeAll(async () => {
    server = await startServer({ model: inject('modelDir'), port: 0, apiKey: KEY, logger: (m) => logs.push(m) });
    await server.ready;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a wrong key of any length is a 401 that quotes neither key, and neither key reaches the log', async () => {
    const bodies: string[] = [];
    for (const given of ['x', KEY.slice(0, -1), `${KEY}x`, KEY.toUpperCase(), 'k'.repeat(10_000), `${KEY}\u00e9`]) {
      const res = await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${given}` } });
      expect(res.status, given.slice(0, 40)).toBe(401);
      const body = await res.text();
      expect(JSON.parse(body).error.code).toBe('invalid_api_key');
      expect(body).not.toContain(KEY.slice(3, 20));
      bodies.push(body);
    }
    expect((await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status).toBe(200);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(await metrics.text()).not.toContain(KEY);
    expect(new Set(bodies).size).toBe(1);
    expect(logs.join('\n')).not.toContain(KEY.slice(3, 20));
  });

  it('a body nested 100,000 deep is a 400, and the worker slot stays free for the next request', async () => {
    const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
    const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    // `user` and `metadata` pass the request's own checks; their structured clone to the worker
    // overflowed the stack (a request that never answered, and a 500).
    for (const field of ['user', 'metadata', 'messages']) {
      const body = `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"${field}":${deep}}`;
      const res = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers, body });
      expect(res.status, field).toBe(400);
      expect((await res.json()).error).toMatchObject({ code: 'invalid_json', message: 'the request body nests arrays and objects more than 100 levels deep' });
    }
    expect(await (await fetch(`${server.url}/health`)).json()).toMatchObject({ status: 'ok', running: 0, queued: 0 });
    const ok = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 }) });
    expect(ok.status).toBe(200);
  });
});
