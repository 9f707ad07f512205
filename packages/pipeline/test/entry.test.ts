// The package's public face: `@llava-mini/pipeline` is the Node build under Node and the browser build
// in a browser bundle (export conditions, with types), and every package installs light: runtimes,
// sharp, ffmpeg and the tiny-checkpoint tool are optional peers, never hard dependencies.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../../..');

/** Run a Node script from the repository root, as a user's project would. */
function node(code: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [...args, '--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

describe('the public entry', () => {
  it("resolves to the Node build under Node (import and require)", () => {
    const esm = node("import { LlavaMini, convertCheckpoint } from '@llava-mini/pipeline'; console.log(typeof LlavaMini.fromPretrained, typeof convertCheckpoint)");
    expect(esm).toMatchObject({ code: 0, stdout: 'function function' });
    const cjs = node("import { createRequire } from 'node:module'; const m = createRequire(process.cwd() + '/')('@llava-mini/pipeline'); console.log(typeof m.LlavaMini.fromPretrained, typeof m.convertCheckpoint)");
    expect(cjs).toMatchObject({ code: 0, stdout: 'function function' });
  });

  it('resolves to the browser build in a browser bundle, with nothing of Node in it', async () => {
    // An app's source in the repository root, where it resolves the package as an installed one.
    const contents = "import { LlavaMini } from '@llava-mini/pipeline';\nexport const load = (url: string) => LlavaMini.fromPretrained(url, { device: 'wasm' });\n";
    const result = await esbuild.build({ stdin: { contents, loader: 'ts', resolveDir: ROOT, sourcefile: 'app.ts' }, bundle: true, write: false, metafile: true, format: 'esm', platform: 'browser', external: ['node:*'], logLevel: 'silent', absWorkingDir: ROOT });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs).toContain('packages/pipeline/dist/web.js');
    expect(inputs.filter((f) => /pipeline\/dist\/node\.js|onnxruntime-node|sharp|ffmpeg|ffprobe|packages\/tiny/.test(f))).toEqual([]);
    // core's web backend reads files only under Node, behind a guarded dynamic import.
    expect(result.metafile.outputs[Object.keys(result.metafile.outputs)[0]].imports.filter((i) => i.external).map((i) => i.path.replace(/^node:/, ''))).toEqual(['fs/promises']);
  });

  it('has types for each condition', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../package.json'), 'utf8'));
    for (const condition of ['browser', 'node', 'default']) {
      for (const kind of ['import', 'require']) {
        const target = pkg.exports['.'][condition][kind];
        expect(fs.existsSync(path.join(__dirname, '..', target.types)), `${condition}/${kind}: ${target.types}`).toBe(true);
        expect(fs.existsSync(path.join(__dirname, '..', target.default)), `${condition}/${kind}: ${target.default}`).toBe(true);
      }
    }
  });
});

describe('installs light', () => {
  const HEAVY = /^(onnxruntime-node|onnxruntime-web|sharp|@ffmpeg-installer\/ffmpeg|@ffprobe-installer\/ffprobe|@llava-mini\/tiny|@llava-mini\/reference)$/;
  const manifests = new Map<string, { dependencies?: Record<string, string>; peerDependencies?: Record<string, string>; peerDependenciesMeta?: Record<string, { optional?: boolean }>; private?: boolean }>();
  for (const dir of fs.readdirSync(path.join(ROOT, 'packages'))) {
    const file = path.join(ROOT, 'packages', dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      manifests.set(pkg.name, pkg);
    }
  }

  it('no published package pulls in a runtime, sharp, ffmpeg or the tiny tool, even through another package', () => {
    for (const [name, pkg] of manifests) {
      if (pkg.private) continue;
      const seen = new Set<string>();
      const walk = (n: string) => {
        for (const dep of Object.keys(manifests.get(n)?.dependencies ?? {})) {
          if (seen.has(dep)) continue;
          seen.add(dep);
          walk(dep);
        }
      };
      walk(name);
      expect({ name, heavy: [...seen].filter((d) => HEAVY.test(d)) }).toEqual({ name, heavy: [] });
      for (const peer of Object.keys(pkg.peerDependencies ?? {})) expect({ name, peer, optional: pkg.peerDependenciesMeta?.[peer]?.optional }).toEqual({ name, peer, optional: true });
    }
  });
});
