// A local Hugging Face Hub for the tests: the routes @huggingface/hub and the download code use
// (`/api/models/{repo}/revision/{rev}`, `/api/models/{repo}/tree/{rev}`, `/{repo}/resolve/{rev}/{path}`),
// with the hub's answers: the commit for a branch, file lists with git blob ids and LFS sha256, an
// ETag and X-Repo-Commit on every file, LFS files redirected (302) to a second server on another
// origin as the hub redirects to its storage, Range requests there, 401 for a gated repository
// without the token, 404 for what does not exist. Every request is logged, with its Authorization
// header, so a test can say what was and was not fetched; faults (a connection cut mid-file, wrong
// bytes) are set per file.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

export interface HubFile {
  path: string;
  bytes: Buffer;
  lfs: boolean;
}

interface Repo {
  commits: Map<string, HubFile[]>;
  refs: Map<string, string>;
  gated: boolean;
}

export interface LoggedRequest {
  server: 'hub' | 'storage';
  method: string;
  url: string;
  authorization?: string;
  range?: string;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

/** A folder's files (top level), LFS for weights and graphs as the hub stores them. */
export function readRepoFolder(dir: string, extra: Record<string, string> = {}): HubFile[] {
  const files = fs
    .readdirSync(dir)
    .filter((name) => !name.startsWith('.'))
    .map((name) => ({ path: name, bytes: fs.readFileSync(path.join(dir, name)), lfs: /\.(safetensors|onnx|data(\.\d+)?)$/.test(name) }));
  for (const [name, text] of Object.entries(extra)) files.push({ path: name, bytes: Buffer.from(text), lfs: false });
  return files;
}

export class LocalHub {
  readonly token = 'hf_local_test_token';
  readonly log: LoggedRequest[] = [];
  /** Files whose next storage download is cut after this many bytes (once). */
  readonly cutAfter = new Map<string, number>();
  /** Files served slowly (64 KiB every 50 ms), so that a test can kill the downloading process mid-file. */
  readonly slow = new Set<string>();
  /** Files served with one byte changed (the hub's listing keeps the true hash). */
  readonly corrupt = new Set<string>();
  private readonly repos = new Map<string, Repo>();
  private readonly blobs = new Map<string, Buffer>();
  private hub!: http.Server;
  private storage!: http.Server;
  endpoint = '';
  private storageUrl = '';

  /** Add a commit to `repo` (its id derived from the files) and point `ref` (default main) at it. */
  addCommit(repo: string, files: HubFile[], options: { ref?: string; gated?: boolean } = {}): string {
    const r = this.repos.get(repo) ?? { commits: new Map(), refs: new Map(), gated: false };
    r.gated = options.gated ?? r.gated;
    const hash = createHash('sha1').update(repo);
    for (const f of files) hash.update(f.path).update(f.bytes);
    const commit = hash.update(String(r.commits.size)).digest('hex');
    r.commits.set(commit, files);
    r.refs.set(options.ref ?? 'main', commit);
    for (const f of files) if (f.lfs) this.blobs.set(sha256(f.bytes), f.bytes);
    this.repos.set(repo, r);
    return commit;
  }

  async start(): Promise<void> {
    this.hub = http.createServer((req, res) => this.serveHub(req, res));
    this.storage = http.createServer((req, res) => this.serveStorage(req, res));
    for (const s of [this.hub, this.storage]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    this.endpoint = `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
    // Another origin (localhost, not 127.0.0.1), as the hub's storage is another host.
    this.storageUrl = `http://localhost:${(this.storage.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.storage]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  /** Requests for files (resolve and storage), not the API's. */
  fileRequests(): LoggedRequest[] {
    return this.log.filter((r) => r.server === 'storage' || r.url.includes('/resolve/'));
  }

  private record(server: LoggedRequest['server'], req: http.IncomingMessage, res: http.ServerResponse): void {
    // As the hub answers a page on another origin: readable, with the commit header exposed.
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-expose-headers', 'x-repo-commit, etag, x-linked-size, x-linked-etag, content-range');
    this.log.push({ server, method: req.method ?? 'GET', url: req.url ?? '', authorization: req.headers.authorization, range: req.headers.range });
  }

  private serveHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.record('hub', req, res);
    const url = new URL(req.url ?? '/', this.endpoint);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/?]+)/.exec(url.pathname);
    const file = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoName = decodeURIComponent((api?.[1] ?? file?.[1]) ?? '');
    const repo = this.repos.get(repoName);
    if (!repo) return json(res, 404, { error: 'Repository not found' });
    if (repo.gated && req.headers.authorization !== `Bearer ${this.token}`) {
      return json(res, 401, { error: `Access to model ${repoName} is restricted. You must have access to it and be authenticated to access it.` });
    }
    const revision = decodeURIComponent((api?.[3] ?? file?.[2]) as string);
    const commit = repo.commits.has(revision) ? revision : repo.refs.get(revision);
    const files = commit ? repo.commits.get(commit) : undefined;
    if (!commit || !files) return json(res, 404, { error: `Invalid rev id: ${revision}` });
    if (api?.[2] === 'revision') {
      return json(res, 200, { _id: commit.slice(0, 24), id: repoName, sha: commit, private: false, gated: repo.gated ? 'manual' : false, downloads: 0, likes: 0, lastModified: '2025-01-01T00:00:00.000Z', siblings: files.map((f) => ({ rfilename: f.path })) });
    }
    if (api?.[2] === 'tree') {
      return json(res, 200, files.map((f) => ({ type: 'file', oid: gitOid(f.bytes), size: f.bytes.length, path: f.path, ...(f.lfs ? { lfs: { oid: sha256(f.bytes), size: f.bytes.length, pointerSize: 134 } } : {}) })));
    }
    const wanted = files.find((f) => f.path === decodeURIComponent(file?.[3] ?? ''));
    if (!file || !wanted) return json(res, 404, { error: 'Entry not found' });
    res.setHeader('x-repo-commit', commit);
    if (wanted.lfs) {
      const oid = sha256(wanted.bytes);
      res.writeHead(302, { location: `${this.storageUrl}/blobs/${oid}?name=${encodeURIComponent(wanted.path)}`, 'x-linked-etag': `"${oid}"`, 'x-linked-size': String(wanted.bytes.length) });
      return void res.end();
    }
    res.writeHead(200, { etag: `"${gitOid(wanted.bytes)}"`, 'content-length': wanted.bytes.length });
    res.end(req.method === 'HEAD' ? undefined : wanted.bytes);
  }

  private serveStorage(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.record('storage', req, res);
    const url = new URL(req.url ?? '/', this.storageUrl);
    const blob = this.blobs.get(url.pathname.replace('/blobs/', ''));
    const name = url.searchParams.get('name') ?? '';
    if (!blob) return json(res, 404, { error: 'not found' });
    let bytes = blob;
    if (this.corrupt.has(name)) {
      bytes = Buffer.from(blob);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = bytes.subarray(start);
    const headers = { etag: `"${sha256(blob)}"`, 'content-length': body.length, 'accept-ranges': 'bytes' };
    res.writeHead(range ? 206 : 200, range ? { ...headers, 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : headers);
    if (this.slow.has(name)) return trickle(res, body);
    const cut = this.cutAfter.get(name);
    if (cut === undefined) return void res.end(body);
    // A dropped connection mid-file: part of the body, then the socket destroyed.
    this.cutAfter.delete(name);
    res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function trickle(res: http.ServerResponse, body: Buffer, at = 0): void {
  if (res.destroyed) return;
  if (at >= body.length) return void res.end();
  res.write(body.subarray(at, at + 65536));
  setTimeout(() => trickle(res, body, at + 65536), 50);
}
