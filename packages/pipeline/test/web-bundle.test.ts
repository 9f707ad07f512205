// What an app gets when it bundles the browser entry: esbuild, as a page's build would run it, and
// the bytes of each package that end up in the output (not merely parsed on the way).
import * as esbuild from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('browser bundle of @llava-mini/pipeline/web', () => {
  it('carries onnxruntime-web and no onnxruntime-node, protobufjs or Node built-ins', async () => {
    const r = await esbuild.build({
      stdin: { contents: "import { LlavaMini } from '@llava-mini/pipeline/web'; globalThis.LlavaMini = LlavaMini;", resolveDir: __dirname },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      metafile: true,
      minify: true,
      outdir: 'out',
      // core's web backend reads files with node:fs only under Node, behind a guarded dynamic import.
      external: ['node:*'],
      logLevel: 'silent',
    });
    const [out] = Object.values(r.metafile.outputs);
    const bytes = new Map<string, number>();
    for (const [file, { bytesInOutput }] of Object.entries(out.inputs)) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? file.split('/').slice(0, 3).join('/');
      if (bytesInOutput > 0) bytes.set(pkg, (bytes.get(pkg) ?? 0) + bytesInOutput);
    }
    const kib = [...bytes].sort((a, b) => b[1] - a[1]).map(([p, n]) => `${p} ${(n / 1024).toFixed(0)} KiB`);
    console.log(`[web-bundle.test] ${(out.bytes / 1024).toFixed(0)} KiB minified: ${kib.join(', ')}`);
    expect(bytes.get('onnxruntime-web')).toBeGreaterThan(0);
    for (const pkg of bytes.keys()) expect(pkg).not.toMatch(/^(onnxruntime-node|protobufjs|@protobufjs\/|sharp|@img\/|@ffmpeg-installer|@ffprobe-installer|cli-progress|commander)/);
    const external = out.imports.filter((i) => i.external).map((i) => `${i.path} (${i.kind})`);
    expect(external).toHaveLength(1);
    expect(external[0]).toMatch(/^(node:)?fs\/promises \(dynamic-import\)$/);
    // The grammar engine of structured output is in (bundled by this package's build, so no Node name is left in it).
    expect([...bytes.keys()].some((p) => /grammar-engine/.test(p))).toBe(true);
  });

  it('with code splitting, the grammar engine is a chunk of its own, loaded only when a structured answer needs it', async () => {
    const r = await esbuild.build({
      stdin: { contents: "import { LlavaMini } from '@llava-mini/pipeline/web'; globalThis.LlavaMini = LlavaMini;", resolveDir: __dirname },
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      metafile: true,
      minify: true,
      outdir: 'out',
      external: ['node:*'],
      logLevel: 'silent',
    });
    const outputs = Object.entries(r.metafile.outputs);
    const [mainName, main] = outputs.find(([, o]) => o.entryPoint)!;
    const engine = outputs.filter(([, o]) => Object.keys(o.inputs).some((i) => /grammar-engine/.test(i)));
    expect(engine).toHaveLength(1);
    const [engineName, engineOut] = engine[0];
    console.log(`[web-bundle.test] split: entry ${(main.bytes / 1024).toFixed(0)} KiB, grammar engine chunk ${(engineOut.bytes / 1024).toFixed(0)} KiB`);
    expect(engineName).not.toBe(mainName);
    expect(main.imports).toContainEqual(expect.objectContaining({ path: engineName, kind: 'dynamic-import' }));
    expect(main.imports.filter((i) => i.path === engineName && i.kind !== 'dynamic-import')).toEqual([]);
  });
});
