// Large files in the browser's private file system (OPFS), in headless Chromium against the local
// hub: a chunk whose connection is cut mid-file is resumed with a Range request from the last
// stored segment (not fetched again from its start); a reload reads every chunk from OPFS and asks
// the hub for the manifest alone; a damaged stored segment fails the sha256 check and its file is
// fetched again. Each load answers with Node's tokens.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertCheckpoint, LlavaMini } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageResult } from './browser-page.js';
import { bundlePage, HAVE_CHROMIUM, launchChromium, ORT_DIST, serve } from './chromium.js';
import { LocalHub, readRepoFolder } from './hub-server.js';

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const REPO = 'someone/llava-mini-chunked';
const QUESTION = 'What is in this picture?';
const RESULT_TIMEOUT_MS = 120_000;
// Small enough that the tiny model's weight chunks go to OPFS in several segments each.
const STORE_MIN = 100_000;
const SEGMENT = 65_536;
const CUT = 200_000;

describe.skipIf(!HAVE_CHROMIUM)('large files in OPFS', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-browser-store-'));
  const hub = new LocalHub();
  let site: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let nodeIds: number[] = [];
  let stored: { name: string; bytes: number; sha256: string }[] = [];

  beforeAll(async () => {
    await writeTinyCheckpoint(path.join(root, 'hf'), { seed: 4, std: 0.3, hiddenSize: 128, intermediateSize: 256 });
    const model = path.join(root, 'model');
    const manifest = await convertCheckpoint(path.join(root, 'hf'), model, { maxChunkBytes: 1_048_576 });
    stored = Object.values(manifest.stages).flatMap((s) => s.files).filter((f) => f.bytes >= STORE_MIN);
    const node = await LlavaMini.fromPretrained(model, { device: 'cpu' });
    nodeIds = (await node.ask(IMAGE, QUESTION, { maxNewTokens: 4 }).done()).ids;
    await node.dispose();
    hub.addCommit(REPO, readRepoFolder(model));
    await hub.start();
    const dir = path.join(root, 'site');
    await bundlePage(path.join(__dirname, 'browser-page.ts'), dir);
    fs.copyFileSync(IMAGE, path.join(dir, 'house.png'));
    site = await serve({ '/ort/': ORT_DIST, '/': dir });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await site?.close();
    await hub.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function result(page: Page, log: string[]): Promise<PageResult> {
    const handle = await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result, undefined, { timeout: RESULT_TIMEOUT_MS, polling: 100 });
    const r = (await handle.jsonValue()) as PageResult;
    expect(r.error, `page failed; page log:\n${log.join('\n')}`).toBeUndefined();
    return r;
  }
  const storageGets = (name: string) => hub.log.filter((r) => r.server === 'storage' && r.url.endsWith(`?name=${encodeURIComponent(name)}`));

  it('resumes a cut chunk from its stored segments, reloads from OPFS, and fetches a damaged file again', async () => {
    expect(stored.map((f) => f.name)).toContain('llm.onnx.data.1');
    const o = site!.origin;
    const query = new URLSearchParams({ model: REPO, hub: hub.endpoint, wasm: `${o}/ort/`, image: `${o}/house.png`, question: QUESTION, maxNewTokens: '4', device: 'wasm', storeMin: String(STORE_MIN), segment: String(SEGMENT) });
    const context = await browser!.newContext();
    const page = await context.newPage();
    const log: string[] = [];
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    try {
      hub.cutAfter.set('llm.onnx.data', CUT);
      await page.goto(`${o}/index.html?${query}`);
      let r = await result(page, log);
      expect(JSON.parse(r.ids as string)).toEqual(nodeIds);
      // The cut request, then one for the rest from the last whole segment stored.
      const llm = storageGets('llm.onnx.data');
      expect(llm.map((q) => q.range)).toEqual([undefined, `bytes=${Math.floor(CUT / SEGMENT) * SEGMENT}-`]);
      // Progress of the resumed request starts where the stored segments end.
      const llmProgress = (r.progress ?? []).filter((e) => e.item === 'llm.onnx.data').map((e) => e.done);
      expect(llmProgress).toContain(Math.floor(CUT / SEGMENT) * SEGMENT);
      expect(llmProgress.at(-1)).toBe(stored.find((f) => f.name === 'llm.onnx.data')?.bytes);

      hub.log.length = 0;
      await page.reload();
      r = await result(page, log);
      expect(JSON.parse(r.ids as string)).toEqual(nodeIds);
      expect(hub.fileRequests().map((q) => q.url)).toEqual([`/${REPO}/resolve/main/manifest.json`]);

      // Damage the first segment of one stored file (same size, other bytes): its check fails and it is fetched again.
      const victim = stored.find((f) => f.name === 'llm.onnx.data.1') as (typeof stored)[number];
      await page.evaluate(async (sha) => {
        const dir = await (await (await navigator.storage.getDirectory()).getDirectoryHandle('llava-mini-models')).getDirectoryHandle(sha);
        const handle = await dir.getFileHandle('000000');
        const bytes = new Uint8Array(await (await handle.getFile()).arrayBuffer());
        bytes[100] ^= 0xff;
        const w = await handle.createWritable();
        await w.write(bytes);
        await w.close();
      }, victim.sha256);
      hub.log.length = 0;
      await page.reload();
      r = await result(page, log);
      expect(JSON.parse(r.ids as string)).toEqual(nodeIds);
      // Weight chunks are LFS files, as the hub stores files this large: fetched from its storage.
      expect(hub.log.filter((q) => q.server === 'storage').map((q) => [new URL(q.url, 'http://x').searchParams.get('name'), q.range])).toEqual([[victim.name, undefined]]);
    } finally {
      await context.close();
    }
  });
});
