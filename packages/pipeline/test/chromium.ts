// Headless Chromium for the browser tests: a loopback static server, the page bundled the way an app
// would bundle the package, Chromium with SwiftShader's WebGPU, and a page run that waits for the
// result the page leaves on window.__result (with its console and any request off the server).
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
// onnxruntime-web's main file under Node sits in its dist/, beside the .wasm files the page loads.
export const ORT_DIST = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
/** Chromium's WebGPU on its bundled SwiftShader when there is no GPU (a GPU, if present, is used instead). */
const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
};

/** A static file server on 127.0.0.1 only: URL prefix -> folder. Cross-origin isolated, like a page running threaded WASM would be. */
export async function serve(mounts: Record<string, string>): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url ?? '/', 'http://127.0.0.1');
    const prefix = Object.keys(mounts).find((p) => pathname.startsWith(p));
    const dir = prefix && path.resolve(mounts[prefix]);
    const file = dir && path.resolve(dir, `.${path.posix.normalize(`/${decodeURIComponent(pathname.slice(prefix.length))}`)}`);
    if (!dir || !file || !file.startsWith(dir + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Bundle a page script into `site` (page.js + index.html) as an app would: the package's browser
 * build of onnxruntime-web, its .wasm files served separately (wasmPaths), not copied by the bundler.
 */
export async function bundlePage(entry: string, site: string): Promise<void> {
  await esbuild.build({
    entryPoints: [entry],
    outfile: path.join(site, 'page.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // core's web backend reaches node:fs only under Node, through a guarded dynamic import.
    external: ['node:*'],
    logLevel: 'error',
  });
  fs.writeFileSync(path.join(site, 'index.html'), '<!doctype html><meta charset="utf-8"><title>llava-mini</title><script type="module" src="page.js"></script>\n');
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30_000,
    args: ['--headless=new', '--no-sandbox', ...WEBGPU_FLAGS, '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Open `url` in a fresh context and wait for the page's window.__result; its console and any request off `origin` come back too. */
export async function runPage<R>(browser: Browser, origin: string, url: string, timeoutMs: number): Promise<{ result: R; log: string[]; offsite: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const log: string[] = [];
  const offsite: string[] = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith(`${origin}/`)) offsite.push(r.url());
  });
  try {
    await page.goto(url, { timeout: 30_000 });
    const handle = await page
      .waitForFunction(() => (window as unknown as { __result?: unknown }).__result, undefined, { timeout: timeoutMs, polling: 100 })
      .catch((err: Error) => {
        throw new Error(`no result from the page within ${timeoutMs / 1000} s (${err.message}); page log:\n${log.join('\n')}`);
      });
    return { result: (await handle.jsonValue()) as R, log, offsite };
  } finally {
    await context.close().catch(() => undefined);
  }
}
