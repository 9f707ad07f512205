import { defineConfig, type Options } from 'tsup';

/** Every package builds the same way: ESM + CJS + type declarations for its entry points. */
export const packageBuild = (entry: string[], extra: Options[] = []) =>
  defineConfig([{ entry, format: ['esm', 'cjs'], dts: true, sourcemap: true, clean: true, target: 'es2022' }, ...extra]);
