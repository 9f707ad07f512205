// Small SVG charts (grouped bars, lines) rendered to PNG with sharp, for bench/plots/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CACHE } from './common.js';

export interface Series {
  name: string;
  values: number[];
}

export interface ChartOptions {
  title: string;
  /** Group labels along the x axis (bar charts) or x values (line charts). */
  categories: string[];
  series: Series[];
  yLabel: string;
  xLabel?: string;
  /** Write each value on top of its bar. */
  labels?: (v: number) => string;
  width?: number;
  height?: number;
}

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" axis maximum and tick step for values up to `max`. */
function axis(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

const tick = (v: number) => (Math.abs(v) >= 1000 ? Math.round(v).toString() : Number(v.toPrecision(4)).toString());

function frame(o: ChartOptions, W: number, Hh: number, m: { l: number; r: number; t: number; b: number }, top: number, step: number): string[] {
  const out: string[] = [];
  out.push(`<rect width="${W}" height="${Hh}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="24" font-size="17" font-weight="bold" text-anchor="middle">${esc(o.title)}</text>`);
  const ph = Hh - m.t - m.b;
  for (let v = 0; v <= top + 1e-9; v += step) {
    const y = m.t + ph - (v / top) * ph;
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${y + 4}" font-size="12" text-anchor="end">${tick(v)}</text>`);
  }
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" font-size="13" text-anchor="middle">${esc(o.yLabel)}</text>`);
  if (o.xLabel) out.push(`<text x="${m.l + (W - m.l - m.r) / 2}" y="${Hh - 8}" font-size="13" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  // legend
  let x = m.l + 10;
  o.series.forEach((s, i) => {
    out.push(`<rect x="${x}" y="36" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    out.push(`<text x="${x + 16}" y="46" font-size="12">${esc(s.name)}</text>`);
    x += 36 + s.name.length * 7;
  });
  return out;
}

export function barChart(o: ChartOptions): string {
  const W = o.width ?? 820;
  const Hh = o.height ?? 440;
  const m = { l: 70, r: 20, t: 60, b: o.xLabel ? 70 : 55 };
  const max = Math.max(...o.series.flatMap((s) => s.values.filter(Number.isFinite)));
  const { top, step } = axis(max);
  const out = frame(o, W, Hh, m, top, step);
  const pw = W - m.l - m.r;
  const ph = Hh - m.t - m.b;
  const gw = pw / o.categories.length;
  const bw = (gw * 0.8) / o.series.length;
  o.categories.forEach((c, ci) => {
    const gx = m.l + ci * gw + gw * 0.1;
    o.series.forEach((s, si) => {
      const v = s.values[ci];
      if (!Number.isFinite(v)) return;
      const h = (v / top) * ph;
      const x = gx + si * bw;
      out.push(`<rect x="${x}" y="${m.t + ph - h}" width="${bw - 2}" height="${h}" fill="${COLORS[si % COLORS.length]}"/>`);
      if (o.labels) out.push(`<text x="${x + bw / 2}" y="${m.t + ph - h - 4}" font-size="11" text-anchor="middle">${esc(o.labels(v))}</text>`);
    });
    out.push(`<text x="${gx + gw * 0.4}" y="${m.t + ph + 18}" font-size="12" text-anchor="middle">${esc(c)}</text>`);
  });
  return svg(W, Hh, out);
}

/** Lines over numeric x values (categories parsed as numbers). */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 820;
  const Hh = o.height ?? 440;
  const m = { l: 70, r: 30, t: 60, b: o.xLabel ? 70 : 55 };
  const xs = o.categories.map(Number);
  const max = Math.max(...o.series.flatMap((s) => s.values.filter(Number.isFinite)));
  const { top, step } = axis(max);
  const out = frame(o, W, Hh, m, top, step);
  const pw = W - m.l - m.r;
  const ph = Hh - m.t - m.b;
  const xmax = Math.max(...xs) || 1;
  const X = (x: number) => m.l + (x / xmax) * pw;
  const Y = (y: number) => m.t + ph - (y / top) * ph;
  for (const t of axis(xmax).step ? Array.from({ length: Math.floor(xmax / axis(xmax).step) + 1 }, (_, i) => i * axis(xmax).step) : []) {
    out.push(`<text x="${X(t)}" y="${m.t + ph + 18}" font-size="12" text-anchor="middle">${tick(t)}</text>`);
  }
  o.series.forEach((s, si) => {
    const pts = s.values.map((v, i) => `${X(xs[i]).toFixed(1)},${Y(v).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${COLORS[si % COLORS.length]}" stroke-width="2.5"/>`);
  });
  return svg(W, Hh, out);
}

const svg = (W: number, H: number, body: string[]) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Arial, sans-serif">${body.join('')}</svg>`;

/** Whether this run records its results; when not (--no-record), plots go to .cache/bench/plots. */
export const plotOutput = { record: true };

/** Render an SVG string to a PNG file (sharp is a dev dependency of the repository root). */
export async function savePng(svgText: string, file: string): Promise<void> {
  if (!plotOutput.record) file = path.join(CACHE, 'plots', path.basename(file));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const { default: sharp } = await import('sharp');
  await sharp(Buffer.from(svgText)).png().toFile(file);
}
