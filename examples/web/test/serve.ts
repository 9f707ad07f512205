// The built page and the models, served from loopback with the headers that give the page
// cross-origin isolation (onnxruntime-web's WASM threads need SharedArrayBuffer), as Vite's server does.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.mp4': 'video/mp4' };

/** Serve each folder of `mounts` under its URL prefix (the first prefix that matches wins: list the longer ones first). */
export async function serve(mounts: Record<string, string>): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://127.0.0.1');
    const prefix = Object.keys(mounts).find((p) => pathname.startsWith(p)) as string;
    const dir = path.resolve(mounts[prefix]);
    const rel = pathname.slice(prefix.length) || 'index.html';
    const file = path.resolve(dir, `.${path.posix.normalize(`/${rel}`)}`);
    if (!file.startsWith(dir + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
