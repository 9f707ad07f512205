import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AbortError, VideoError } from '@llava-mini/core';
import { DEFAULT_MAX_PIXELS } from './image.js';

/** 8-bit RGB pixels, 3 bytes per pixel, row-major. */
export interface RgbFrame {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface VideoInfo {
  /** Size of the decoded frames: the stored size, swapped when rotation metadata turns the picture a quarter. */
  width: number;
  height: number;
  /** Display rotation in degrees from the stream's metadata (phone videos: 90, -90, 180), 0 when none. */
  rotation: number;
  /** Frames in the first video stream (demuxed packets, as decord counts them). */
  frames: number;
  /** Average frame rate. */
  fps: number;
}

/** What a video may cost before it is refused, each named in the error that refuses it. */
export interface VideoLimits {
  /** Most pixels of one frame (width x height, after rotation), checked from the probe before decoding (default 1e8, as images). */
  maxPixels?: number;
  /** Most seconds ffprobe, and then ffmpeg, may run on one video (default 600; 0: no limit). */
  timeoutSeconds?: number;
}

export const DEFAULT_VIDEO_TIMEOUT_SECONDS = 600;
/** ffprobe prints a few hundred bytes for one stream; more is not a probe of a real file. */
const MAX_PROBE_OUTPUT = 1 << 20;

/**
 * ffmpeg and ffprobe: FFMPEG_PATH / FFPROBE_PATH, else the static builds of @ffmpeg-installer/ffmpeg
 * and @ffprobe-installer/ffprobe (optional peer dependencies: about 150 MB that only video input
 * needs), else the ones on PATH (e.g. Debian's ffmpeg package).
 */
export async function ffmpegBinary(kind: 'ffmpeg' | 'ffprobe'): Promise<string> {
  const env = process.env[kind === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'];
  if (env) return env;
  try {
    const mod = kind === 'ffmpeg' ? await import('@ffmpeg-installer/ffmpeg') : await import('@ffprobe-installer/ffprobe');
    return ((mod as { default?: { path: string } }).default ?? (mod as unknown as { path: string })).path;
  } catch {
    return kind;
  }
}

/**
 * Every ffprobe and ffmpeg run reads its one local file through these: the file: protocol alone (a
 * path can't name `concat:`, `http:` or a `-option`), and only the demuxers of real video
 * containers. Without them ffmpeg picks a demuxer from the content: an HLS playlist sent as a video
 * makes it read the files the playlist names (outside --allowed-media-path), and the tty demuxer
 * draws any text file (.ans, .nfo) as frames for the model to read back.
 */
export const VIDEO_DEMUXERS = ['mov', 'matroska', 'avi', 'mpeg', 'mpegts', 'asf', 'flv', 'ogg', 'yuv4mpegpipe'];
export const inputArgs = (file: string) => ['-protocol_whitelist', 'file', '-format_whitelist', VIDEO_DEMUXERS.join(','), '-i', `file:${resolve(file)}`];

const MISSING =
  'video input needs ffmpeg and ffprobe: run `npm install @ffmpeg-installer/ffmpeg @ffprobe-installer/ffprobe`, install ffmpeg (e.g. `apt-get install ffmpeg`), or set FFMPEG_PATH and FFPROBE_PATH';

function timeoutOf(limits: VideoLimits, source: string): number {
  const t = limits.timeoutSeconds ?? DEFAULT_VIDEO_TIMEOUT_SECONDS;
  if (!(t >= 0) || !Number.isFinite(t)) throw new VideoError(source, `timeoutSeconds must be a number >= 0, got ${t}`);
  return t;
}

/** Kills `child` after `seconds` (0: never); `fired()` says whether it did. */
function deadline(child: ChildProcess, seconds: number): { fired(): boolean; clear(): void } {
  let fired = false;
  const timer =
    seconds > 0
      ? setTimeout(() => {
          fired = true;
          child.kill('SIGKILL');
        }, seconds * 1000)
      : undefined;
  return { fired: () => fired, clear: () => clearTimeout(timer) };
}

function run(cmd: string, args: string[], source: string, seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = deadline(child, seconds);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.length > MAX_PROBE_OUTPUT) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d) => (err = (err + d).slice(-4096)));
    child.on('error', (e: NodeJS.ErrnoException) => {
      timer.clear();
      reject(new VideoError(source, e.code === 'ENOENT' ? `no ${cmd} found: ${MISSING}` : `cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code) => {
      timer.clear();
      if (timer.fired()) reject(new VideoError(source, `probing took more than ${seconds} s (option timeoutSeconds)`));
      else if (out.length > MAX_PROBE_OUTPUT) reject(new VideoError(source, `cannot be probed: ffprobe printed more than ${MAX_PROBE_OUTPUT} bytes`));
      else if (code === 0) resolve(out);
      else reject(new VideoError(source, `cannot be decoded: ${lastLine(err)}`));
    });
  });
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? 'no message';
}

export async function probeVideo(file: string, limits: VideoLimits = {}): Promise<VideoInfo> {
  const out = await run(
    await ffmpegBinary('ffprobe'),
    ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=width,height,avg_frame_rate,r_frame_rate,nb_read_packets:stream_tags=rotate:stream_side_data=rotation', '-of', 'json', ...inputArgs(file)],
    file,
    timeoutOf(limits, file),
  );
  return parseProbe(out, file, limits);
}

/** A number from a probe field written as a number or a string; anything else is NaN (Number() of an object runs its own toString). */
const numeric = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN);
const shown = (v: unknown) => (typeof v === 'number' ? String(v) : typeof v);

type ProbedStream = { width?: unknown; height?: unknown; avg_frame_rate?: unknown; r_frame_rate?: unknown; nb_read_packets?: unknown; tags?: { rotate?: unknown }; side_data_list?: { rotation?: unknown }[] };

/**
 * VideoInfo from ffprobe's JSON (`probeVideo`'s arguments), checked field by field: a crafted file
 * makes ffprobe print whatever its container says, so every value is validated before use, and the
 * frame size is held to `maxPixels` before any frame is decoded. Any failure is a VideoError.
 */
export function parseProbe(out: string, file: string, limits: VideoLimits = {}): VideoInfo {
  const maxPixels = limits.maxPixels ?? DEFAULT_MAX_PIXELS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new VideoError(file, 'cannot be probed: ffprobe printed no JSON');
  }
  const streams = (parsed as { streams?: unknown } | null)?.streams;
  const stream = (Array.isArray(streams) ? streams[0] : undefined) as ProbedStream | undefined;
  if (!stream || typeof stream !== 'object') throw new VideoError(file, 'has no video stream');
  const { width, height } = stream;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || (width as number) < 1 || (height as number) < 1) {
    throw new VideoError(file, `has no usable frame size (${shown(width)}x${shown(height)})`);
  }
  const [w, h] = [width as number, height as number];
  if (w * h > maxPixels) throw new VideoError(file, `${w}x${h} = ${w * h} pixels a frame is more than the limit of ${maxPixels} (option maxPixels)`);
  const rate = (s: unknown) => {
    const [a, b] = (typeof s === 'string' ? s : '0/0').split('/').map(Number);
    const r = b ? a / b : 0;
    return Number.isFinite(r) && r > 0 ? r : 0;
  };
  const fps = rate(stream.avg_frame_rate) || rate(stream.r_frame_rate);
  const frames = numeric(stream.nb_read_packets);
  if (!Number.isSafeInteger(frames) || frames < 1) throw new VideoError(file, 'has no frames');
  if (!(fps > 0)) throw new VideoError(file, 'has no usable frame rate');
  // ffmpeg turns rotated frames upright when decoding (autorotate), so a quarter turn swaps the
  // size the pipe delivers: reading them at the stored size would shear every portrait phone video.
  // Newer ffprobe reports a display-matrix side datum, older ones a `rotate` tag.
  const sides = Array.isArray(stream.side_data_list) ? stream.side_data_list : [];
  const rotation = numeric(sides.find((d) => d?.rotation !== undefined)?.rotation ?? stream.tags?.rotate ?? 0) || 0;
  const quarter = Math.abs(Math.round(rotation / 90)) % 2 === 1;
  return { width: quarter ? h : w, height: quarter ? w : h, rotation, frames, fps };
}

/**
 * Decode the frames at `indices` (sorted, 0-based) as RGB, one at a time: ffmpeg's select filter
 * drops every other frame before conversion, and the pipe is read one frame's bytes at a time, so
 * memory holds a single frame however long the video is. An index listed twice (the reference's
 * sampling repeats frames of short or low-fps videos: [0,1,2,3,4,4,5,6] for 8 frames at 1 fps) yields
 * its frame twice, as decord's get_batch does; ffmpeg's select emits each frame once.
 */
export async function* decodeFrames(file: string, info: VideoInfo, indices: readonly number[], signal?: AbortSignal, limits: VideoLimits = {}): AsyncGenerator<RgbFrame> {
  if (!indices.length) return;
  const seconds = timeoutOf(limits, file);
  const unique = [...new Set(indices)];
  const repeats = unique.map((i) => indices.filter((j) => j === i).length);
  const dir = mkdtempSync(join(tmpdir(), 'llava-mini-select-'));
  const script = join(dir, 'select.txt');
  // A filter script, not a command-line argument: thousands of indices overflow argv limits.
  writeFileSync(script, `select='${unique.map((i) => `eq(n\\,${i})`).join('+')}'`);
  const ffmpeg = await startFfmpeg(['-v', 'error', ...inputArgs(file), '-map', '0:v:0', '-filter_script:v', script, '-vsync', '0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], file, signal);
  const timer = deadline(ffmpeg.child, seconds);
  const frameBytes = info.width * info.height * 3;
  let pending: Buffer[] = [];
  let have = 0;
  let emitted = 0;
  try {
    for await (const chunk of ffmpeg.stdout) {
      pending.push(chunk);
      have += chunk.length;
      while (have >= frameBytes) {
        const all = Buffer.concat(pending);
        const data = new Uint8Array(all.subarray(0, frameBytes));
        for (let k = 0; k < (repeats[emitted] ?? 1); k++) yield { width: info.width, height: info.height, data: k === 0 ? data : data.slice() };
        emitted++;
        pending = [all.subarray(frameBytes)];
        have -= frameBytes;
      }
    }
    const { code, message } = await ffmpeg.exit();
    if (signal?.aborted) throw new AbortError('video decoding was aborted');
    if (timer.fired()) throw new VideoError(file, `decoding took more than ${seconds} s (option timeoutSeconds)`);
    if (code !== 0) throw new VideoError(file, `cannot be decoded: ${message}`);
    if (emitted === 0) throw new VideoError(file, 'has no decodable frames');
  } finally {
    timer.clear();
    ffmpeg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * ffmpeg started with `args`, its output on a pipe and killed when `signal` aborts. `exit()` waits
 * for its end and gives its code with the last line it printed (a failure to start it is a
 * VideoError about `source`); `stop()` kills it if it still runs and lets go of the signal.
 */
export async function startFfmpeg(args: string[], source: string, signal?: AbortSignal) {
  const child = spawn(await ffmpegBinary('ffmpeg'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onAbort = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort(); // aborted while ffmpeg was being found
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4096)));
  let spawnError: NodeJS.ErrnoException | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', resolve);
    child.on('error', (e) => {
      spawnError = e;
      resolve(null);
    });
  });
  return {
    child,
    stdout: child.stdout as AsyncIterable<Buffer>,
    async exit(): Promise<{ code: number | null; message: string }> {
      const code = await exited;
      if (spawnError) throw new VideoError(source, spawnError.code === 'ENOENT' ? `no ffmpeg found: ${MISSING}` : `cannot run ffmpeg: ${spawnError.message}`, { cause: spawnError });
      return { code, message: lastLine(stderr) };
    },
    stop(): void {
      signal?.removeEventListener('abort', onAbort);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
