import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, VideoError } from '@llava-mini/core';

/** 8-bit RGB pixels, 3 bytes per pixel, row-major. */
export interface RgbFrame {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface VideoInfo {
  width: number;
  height: number;
  /** Frames in the first video stream (demuxed packets, as decord counts them). */
  frames: number;
  /** Average frame rate. */
  fps: number;
}

/**
 * ffmpeg and ffprobe come from npm (@ffmpeg-installer, @ffprobe-installer: static builds inside the
 * packages, so nothing downloads at install). FFMPEG_PATH / FFPROBE_PATH point at other builds,
 * e.g. Debian's ffmpeg package.
 */
async function binary(kind: 'ffmpeg' | 'ffprobe'): Promise<string> {
  const env = process.env[kind === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'];
  if (env) return env;
  try {
    const mod = kind === 'ffmpeg' ? await import('@ffmpeg-installer/ffmpeg') : await import('@ffprobe-installer/ffprobe');
    return ((mod as { default?: { path: string } }).default ?? (mod as unknown as { path: string })).path;
  } catch (err) {
    throw new VideoError(kind, `no ${kind} binary: install @${kind}-installer/${kind} or set ${kind.toUpperCase()}_PATH`, { cause: err });
  }
}

function run(cmd: string, args: string[], source: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => reject(new VideoError(source, `cannot run ${cmd}: ${e.message}`, { cause: e })));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new VideoError(source, `cannot be decoded: ${lastLine(err)}`))));
  });
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? 'no message';
}

export async function probeVideo(file: string): Promise<VideoInfo> {
  const out = await run(
    await binary('ffprobe'),
    ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=width,height,avg_frame_rate,r_frame_rate,nb_read_packets', '-of', 'json', file],
    file,
  );
  const stream = (JSON.parse(out).streams ?? [])[0];
  if (!stream) throw new VideoError(file, 'has no video stream');
  const rate = (s: string | undefined) => {
    const [a, b] = String(s ?? '0/0').split('/').map(Number);
    return b ? a / b : 0;
  };
  const fps = rate(stream.avg_frame_rate) || rate(stream.r_frame_rate);
  const frames = Number(stream.nb_read_packets);
  if (!frames) throw new VideoError(file, 'has no frames');
  if (!(fps > 0)) throw new VideoError(file, 'has no usable frame rate');
  return { width: stream.width, height: stream.height, frames, fps };
}

/**
 * Decode the frames at `indices` (sorted, 0-based) as RGB, one at a time: ffmpeg's select filter
 * drops every other frame before conversion, and the pipe is read one frame's bytes at a time, so
 * memory holds a single frame however long the video is.
 */
export async function* decodeFrames(file: string, info: VideoInfo, indices: readonly number[], signal?: AbortSignal): AsyncGenerator<RgbFrame> {
  if (!indices.length) return;
  const dir = mkdtempSync(join(tmpdir(), 'llava-mini-select-'));
  const script = join(dir, 'select.txt');
  // A filter script, not a command-line argument: thousands of indices overflow argv limits.
  writeFileSync(script, `select='${indices.map((i) => `eq(n\\,${i})`).join('+')}'`);
  const child = spawn(await binary('ffmpeg'), ['-v', 'error', '-i', file, '-map', '0:v:0', '-filter_script:v', script, '-vsync', '0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onAbort = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const frameBytes = info.width * info.height * 3;
  let pending: Buffer[] = [];
  let have = 0;
  let emitted = 0;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      pending.push(chunk);
      have += chunk.length;
      while (have >= frameBytes) {
        const all = Buffer.concat(pending);
        yield { width: info.width, height: info.height, data: new Uint8Array(all.subarray(0, frameBytes)) };
        emitted++;
        pending = [all.subarray(frameBytes)];
        have -= frameBytes;
      }
    }
    const code = await exited;
    if (signal?.aborted) throw new AbortError('video decoding was aborted');
    if (code !== 0) throw new VideoError(file, `cannot be decoded: ${lastLine(stderr)}`);
    if (emitted === 0) throw new VideoError(file, 'has no decodable frames');
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
