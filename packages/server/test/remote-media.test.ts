import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError } from '../src/errors.js';
import { hostAllowed, RemoteMediaFetcher, type RemoteMediaPolicy } from '../src/remote-media.js';

// A real TLS server on loopback (a self-signed certificate for localhost, 127.0.0.1 and 127.0.0.2).
const cert = fs.readFileSync(path.join(__dirname, 'fixtures/loopback-cert.pem'), 'utf8');
const key = fs.readFileSync(path.join(__dirname, 'fixtures/loopback-key.pem'), 'utf8');
const IMAGE = fs.readFileSync(path.resolve(__dirname, '../../../examples/assets/house.png'));
let server: https.Server;
let port: number;
let slowStarted = 0;

beforeAll(async () => {
  server = https.createServer({ cert, key }, (req, res) => {
    const to = (location: string) => res.writeHead(302, { location }).end();
    if (req.url === '/house.png') res.writeHead(200, { 'content-type': 'image/png' }).end(IMAGE);
    else if (req.url === '/to-http') to(`http://127.0.0.1:${port}/house.png`);
    else if (req.url === '/to-other-loopback') to(`https://127.0.0.2:${port}/house.png`);
    else if (req.url === '/to-unlisted-host') to(`https://example.org/house.png`);
    else if (req.url === '/relative') to('/house.png');
    else if (req.url === '/loop') to('/loop');
    else if (req.url === '/chunked') {
      // No content-length: the cap must hold while reading.
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(IMAGE.subarray(0, 1000));
      res.end(IMAGE.subarray(1000));
    } else if (req.url === '/slow') {
      slowStarted++;
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(IMAGE.subarray(0, 10)); // and never the rest
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const policy = (o: Partial<RemoteMediaPolicy> = {}): RemoteMediaPolicy => ({ hosts: ['127.0.0.1', '127.0.0.2', 'localhost'], allowAddresses: ['127.0.0.1'], ca: cert, maxBytes: 1 << 20, timeoutMs: 2000, ...o });

async function refusal(f: RemoteMediaFetcher, url: string): Promise<string> {
  const err = await f.fetch(url, 'messages[0].content[0].image_url.url').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpError);
  const api = (err as HttpError).api;
  expect(api).toMatchObject({ status: 400, code: 'remote_media_refused', param: 'messages[0].content[0].image_url.url' });
  return api.message;
}

describe('remote media fetching (SSRF-safe)', () => {
  it('fetches an allowed https URL, following a checked relative redirect', async () => {
    const f = new RemoteMediaFetcher(policy());
    expect(Buffer.from(await f.fetch(`https://127.0.0.1:${port}/house.png`, 'p')).equals(IMAGE)).toBe(true);
    expect(Buffer.from(await f.fetch(`https://127.0.0.1:${port}/relative`, 'p')).equals(IMAGE)).toBe(true);
  });

  it('refuses loopback and private addresses after DNS resolution, unless explicitly allowed', async () => {
    const f = new RemoteMediaFetcher(policy({ allowAddresses: [] }));
    expect(await refusal(f, `https://127.0.0.1:${port}/house.png`)).toMatch(/private IP address/);
    // A host name is resolved first: localhost's address is refused, not its name.
    expect(await refusal(f, `https://localhost:${port}/house.png`)).toMatch(/not allowed/);
    for (const inner of ['10.0.0.1', '169.254.169.254', '192.168.1.1', '[::1]', '[fe80::1]', '0.0.0.0']) {
      const g = new RemoteMediaFetcher(policy({ allowAddresses: [], hosts: [inner.replace(/[[\]]/g, '')] }));
      expect(await refusal(g, `https://${inner}/x.png`)).toMatch(/not allowed/);
    }
  });

  it('https only; hosts outside the allowlist and URLs with credentials are refused before any connection', async () => {
    const f = new RemoteMediaFetcher(policy());
    expect(await refusal(f, `http://127.0.0.1:${port}/house.png`)).toMatch(/must be https/);
    expect(await refusal(f, 'https://example.org/house.png')).toMatch(/not in the server's remote media allowlist/);
    expect(await refusal(f, `https://user:pw@127.0.0.1:${port}/house.png`)).toMatch(/credentials/);
    expect(await refusal(f, 'ftp://127.0.0.1/x')).toMatch(/must be https/);
  });

  it('checks every redirect again: to http, to an unlisted host, to a loopback address not allowed, in a loop', async () => {
    const f = new RemoteMediaFetcher(policy());
    expect(await refusal(f, `https://127.0.0.1:${port}/to-http`)).toMatch(/must be https/);
    expect(await refusal(f, `https://127.0.0.1:${port}/to-unlisted-host`)).toMatch(/allowlist/);
    expect(await refusal(f, `https://127.0.0.1:${port}/to-other-loopback`)).toMatch(/127\.0\.0\.2.*not allowed/);
    expect(await refusal(f, `https://127.0.0.1:${port}/loop`)).toMatch(/redirects/);
  });

  it('caps the size (declared or streamed) and the time', async () => {
    const small = new RemoteMediaFetcher(policy({ maxBytes: 5000 }));
    expect(await refusal(small, `https://127.0.0.1:${port}/house.png`)).toMatch(/more than the limit of 5000/);
    expect(await refusal(small, `https://127.0.0.1:${port}/chunked`)).toMatch(/more than the limit of 5000/);
    const quick = new RemoteMediaFetcher(policy({ timeoutMs: 300 }));
    expect(await refusal(quick, `https://127.0.0.1:${port}/slow`)).toMatch(/longer than 300 ms/);
    expect(slowStarted).toBe(1);
  });

  it('resolves once and connects to the address it checked: a DNS answer that changes (rebinding) cannot slip inward', async () => {
    // 127.0.0.1 stands for a public address (allowed) and 127.0.0.2 for an inner one (not allowed),
    // where a second server holds what an attacker wants. A check-then-connect fetcher that resolved
    // twice would check the first answer and connect to the second.
    const inner = https.createServer({ cert, key }, (_req, res) => res.writeHead(200).end('inner secret'));
    await new Promise<void>((resolve) => inner.listen(port, '127.0.0.2', resolve));
    try {
      for (const answers of [
        ['127.0.0.1', '127.0.0.2'],
        ['127.0.0.2', '127.0.0.1'],
      ]) {
        const asked: string[] = [];
        const lookup = ((host: string, options: { all?: boolean }, cb: (...a: unknown[]) => void) => {
          const address = answers[Math.min(asked.length, answers.length - 1)];
          asked.push(host);
          if (options.all) cb(null, [{ address, family: 4 }]);
          else cb(null, address, 4);
        }) as unknown as RemoteMediaPolicy['lookup'];
        const f = new RemoteMediaFetcher(policy({ lookup }));
        if (answers[0] === '127.0.0.1') expect(Buffer.from(await f.fetch(`https://localhost:${port}/house.png`, 'p')).equals(IMAGE)).toBe(true);
        else expect(await refusal(f, `https://localhost:${port}/house.png`)).toMatch(/127\.0\.0\.2.*not allowed/);
        expect(asked).toEqual(['localhost']);
      }
    } finally {
      inner.close();
    }
  });

  it('host patterns: exact names, and *.domain for subdomains only', () => {
    expect(hostAllowed('img.example.com', ['*.example.com'])).toBe(true);
    expect(hostAllowed('example.com', ['*.example.com'])).toBe(false);
    expect(hostAllowed('evilexample.com', ['*.example.com'])).toBe(false);
    expect(hostAllowed('Example.COM', ['example.com'])).toBe(true);
  });
});
