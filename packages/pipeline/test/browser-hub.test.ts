// A hub id in the browser entry, in headless Chromium: a converted tiny model uploaded as a
// repository of the local hub (test/hub-server.ts, another origin than the page, LFS files
// redirected to a third), loaded by `fromPretrained('org/name', { hubEndpoint })`, answering with
// Node's tokens; after a reload it loads from the Cache API, asking the hub for the manifest alone.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertCheckpoint, LlavaMini } from '@llava-mini/pipeline/node';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageResult } from './browser-page.js';
import { bundlePage, HAVE_CHROMIUM, launchChromium, ORT_DIST, serve } from './chromium.js';
import { LocalHub, readRepoFolder } from './hub-server.js';

const IMAGE = path.resolve(__dirname, '../../../examples/assets/house.png');
const REPO = 'someone/llava-mini-tiny-web';
const QUESTION = 'What is in this picture?';
const RESULT_TIMEOUT_MS = 120_000;

describe.skipIf(!HAVE_CHROMIUM)('a hub id in the browser entry', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-browser-hub-'));
  const hub = new LocalHub();
  let site: Awaited<ReturnType<typeof serve>> | undefined;
  let browser: Browser | undefined;
  let nodeIds: number[] = [];

  beforeAll(async () => {
    await writeTinyCheckpoint(path.join(root, 'hf'), { seed: 11, std: 0.3, imageSize: 112 });
    const model = path.join(root, 'model');
    await convertCheckpoint(path.join(root, 'hf'), model);
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

  it("loads from the hub, answers with Node's tokens, and after a reload reads every file from the Cache API", async () => {
    const o = site!.origin;
    const query = new URLSearchParams({ model: REPO, hub: hub.endpoint, wasm: `${o}/ort/`, image: `${o}/house.png`, question: QUESTION, maxNewTokens: '4', device: 'wasm' });
    const context = await browser!.newContext();
    const page = await context.newPage();
    const log: string[] = [];
    page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
    const result = async () => {
      const handle = await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result, undefined, { timeout: RESULT_TIMEOUT_MS, polling: 100 });
      const r = (await handle.jsonValue()) as PageResult;
      expect(r.error, `page failed; page log:\n${log.join('\n')}`).toBeUndefined();
      return JSON.parse(r.ids as string) as number[];
    };
    try {
      await page.goto(`${o}/index.html?${query}`);
      expect(await result()).toEqual(nodeIds);
      const fetched = hub.fileRequests().filter((r) => r.server === 'storage').length;
      expect(fetched).toBeGreaterThan(0);

      hub.log.length = 0;
      await page.reload();
      expect(await result()).toEqual(nodeIds);
      expect(hub.fileRequests().map((r) => r.url)).toEqual([`/${REPO}/resolve/main/manifest.json`]);
    } finally {
      await context.close();
    }
  });
});
