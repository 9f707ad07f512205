// Shared helpers of the benchmarks: paths, options, statistics, formatting, machine description, RESULTS.md sections.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Backend, type Device, now } from '@llava-mini/core';
import { nodeBackend } from '@llava-mini/core/node';
import { webBackend } from '@llava-mini/core/web';

/** The repository root: the nearest folder above the running script with turbo.json (scripts run compiled from .cache/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'turbo.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

export const ROOT = repoRoot();
export const CACHE = path.join(ROOT, '.cache', 'bench');
export const RESULTS = path.join(ROOT, 'bench', 'RESULTS.md');

// A bench's options: `--name` flags and `--name=value` (or `--name=a,b`) settings. Each bench is its
// own process (run.js starts the named ones), so its options are what follows the script's name.
const argv = process.argv.slice(2);
export const flag = (name: string): boolean => argv.includes(`--${name}`);
export const option = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
export const listOption = (name: string, all: string[]): string[] => option(name)?.split(',') ?? all;
/** The command that reruns this bench with these options, for the record (`name` is run.js's name for it). */
export const benchCommand = (name?: string): string => {
  const words = name ? [name, ...argv] : argv;
  return `npm run bench${words.length ? ` -- ${words.join(' ')}` : ''}`;
};

/** The benches' clock is core's (a re-export, so a bench needs one import for its helpers). */
export { now };

export const log = (m: string): void => {
  process.stderr.write(`${m}\n`);
};
export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');
/** FLOPs in the unit that reads best (G or T). */
export const flops = (x: number): string => (x >= 1e12 ? `${(x / 1e12).toFixed(2)} T` : x >= 1e9 ? `${(x / 1e9).toFixed(2)} G` : `${(x / 1e6).toFixed(1)} M`);
export const mb = (bytes: number, digits = 1): string => `${(bytes / 1e6).toFixed(digits)} MB`;

/** One markdown table from a header and rows; `align` marks numeric columns (right-aligned). */
export function table(header: string[], rows: (string | number)[][], numeric: boolean[] = header.map((_, i) => i > 0)): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(numeric.map((n) => (n ? '---:' : '---'))), ...rows.map(line)].join('\n');
}

/** CPU model, cores and memory of this machine, for the record. */
export function machine(): string {
  let cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  try {
    const m = /model name\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    // not Linux: os.cpus() is all there is
  }
  const flags = (() => {
    try {
      const f = /flags\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(' ') ?? [];
      return ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_tile'].filter((x) => f.includes(x)).join(', ');
    } catch {
      return '';
    }
  })();
  return `${cpu}, ${os.cpus().length} cores${flags ? ` (${flags})` : ''}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** CPU seconds all processes have used (Linux /proc/stat; undefined elsewhere). */
export function systemCpuSeconds(): number | undefined {
  try {
    const [, ...fields] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
    return (user + nice + system + irq + softirq + steal) / 100;
  } catch {
    return undefined;
  }
}

/** Tracks how much of the machine other processes used while a bench ran (children of this one count as ours). */
export class LoadMeter {
  private readonly system = systemCpuSeconds();
  private readonly wall = now();
  private readonly self = process.cpuUsage();
  private own = 0;
  /** Add CPU seconds used by a child process we started. */
  addOwn(seconds: number): void {
    this.own += seconds;
  }
  report(): string {
    const end = systemCpuSeconds();
    if (this.system === undefined || end === undefined) return 'unknown';
    const self = process.cpuUsage(this.self);
    const ours = (self.user + self.system) / 1e6 + this.own;
    const capacity = ((now() - this.wall) / 1000) * os.cpus().length;
    return `${Math.max(0, (100 * (end - this.system - ours)) / capacity).toFixed(0)} % of the machine's CPU time went to other processes during the run`;
  }
}

/**
 * Replace the text between `<!-- name:start -->` and `<!-- name:end -->` in RESULTS.md (appending
 * the marked block at the end when missing), so other benches' sections stay as they were.
 */
export function replaceMarked(file: string, name: string, body: string, before?: string): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmark results\n';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  let out: string;
  if (a >= 0 && b > a) out = `${text.slice(0, a)}${block}${text.slice(b + end.length)}`;
  else if (before && text.includes(before)) out = text.replace(before, `${block}\n\n${before}`);
  else out = `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, out);
}

/** A `count`-token prompt of ordinary English (one sentence repeated), the same for every LLM bench. */
export function promptIds(tokenizer: { encode(text: string, o: { addSpecialTokens: boolean }): number[] }, count: number): number[] {
  const text = 'The photo shows a city street at night with cars, buses, people walking and bright lights from the shops. ';
  const ids: number[] = [];
  while (ids.length < count) ids.push(...tokenizer.encode(text, { addSpecialTokens: false }));
  return ids.slice(0, count);
}

/** A backend and device a bench runs on, with its table label. */
export interface Target {
  label: string;
  backend: Backend;
  device: Device;
}

/** The CPU targets named in `backends` ('node': onnxruntime-node CPU, 'web': onnxruntime-web WASM). */
export async function cpuTargets(backends: readonly string[]): Promise<Target[]> {
  const out: Target[] = [];
  if (backends.includes('node')) out.push({ label: 'node cpu', backend: await nodeBackend(), device: 'cpu' });
  if (backends.includes('web')) out.push({ label: 'web wasm', backend: await webBackend(), device: 'wasm' });
  return out;
}

/**
 * Bytes a decode step reads of an LLM's two graphs: the decoder's files (the graph and its weights
 * beside it), less the token table inside it, of which a step gathers one row (the embeddings graph
 * holds the same table).
 */
export function decoderStepBytes(graphs: { model: string; embeddings: string }): number {
  const bytes = (file: string) => {
    const dir = path.dirname(file);
    return fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(file))).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  };
  return bytes(graphs.model) - bytes(graphs.embeddings);
}
