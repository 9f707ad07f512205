// A live source read through ffmpeg: a file played at its own pace, a network stream, or a camera.
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { VideoError } from '@llava-mini/core';
import { DEFAULT_MAX_PIXELS, type TimedFrame } from './image.js';
import { inputArgs, startFfmpeg } from './video.js';

export interface LiveVideoOptions {
  /** Frames delivered per second of stream time (default 1, the reference's video sampling). */
  fps?: number;
  /** A file is read at its own pace, as if it were live (default true); false reads it as fast as it decodes. */
  realtime?: boolean;
  /** Most pixels of one frame, checked from each frame's header before its pixels are read (default 1e8). */
  maxPixels?: number;
  /** Stops the source: ffmpeg is killed and the frames simply end. */
  signal?: AbortSignal;
}

/** Network protocols a stream URL may use (and the ones they open below them); never `file`. */
const NETWORK_PROTOCOLS = 'http,https,tcp,tls,crypto,rtp,udp,rtsp,rtsps,rtmp,rtmps,srtp,srt';
const STREAM_URL = /^(https?|rtsps?|rtmps?|srt|udp|tcp):\/\//i;
const DEVICE = /^\/dev\/video\d+$/;

/** ffmpeg's input arguments for a source: what it is decides what ffmpeg may open. */
async function sourceArgs(source: string, realtime: boolean): Promise<string[]> {
  if (STREAM_URL.test(source)) return ['-protocol_whitelist', NETWORK_PROTOCOLS, '-i', source];
  if (DEVICE.test(source)) {
    if (process.platform !== 'linux') throw new VideoError(source, 'camera devices are read through video4linux, on Linux only');
    return ['-f', 'v4l2', '-i', source];
  }
  let file = source;
  try {
    if (source.startsWith('file:')) file = fileURLToPath(source);
  } catch (err) {
    throw new VideoError(source, `is not a usable file: URL (${(err as Error).message})`, { cause: err });
  }
  const s = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new VideoError(source, err.code === 'ENOENT' ? 'file not found' : `cannot read: ${err.message}`, { cause: err });
  });
  if (!s.isFile()) throw new VideoError(source, 'not a file, a stream URL (http, rtsp, rtmp, srt, udp, tcp) or a camera (/dev/videoN)');
  return [...(realtime ? ['-re'] : []), ...inputArgs(file)];
}

/**
 * One PPM frame's header (`P6 <width> <height> 255` and one whitespace byte) at the start of `buf`:
 * its size and length, or undefined until enough bytes have come. Each frame carries its own size,
 * so a stream that changes resolution mid-way (a camera, an adaptive stream) needs no probe.
 */
function ppmHeader(buf: Buffer, source: string): { width: number; height: number; headerBytes: number } | undefined {
  const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(buf.subarray(0, 64).toString('latin1'));
  if (!m) {
    if (buf.length >= 64 || !/^P?6?[\s\d]*$/.test(buf.toString('latin1'))) throw new VideoError(source, 'ffmpeg sent something other than a PPM frame');
    return undefined;
  }
  const [width, height, maxval] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (maxval !== 255 || width < 1 || height < 1) throw new VideoError(source, `ffmpeg sent a frame of ${width}x${height} at depth ${maxval}`);
  return { width, height, headerBytes: m[0].length };
}

/**
 * The frames of a live source as they come, sampled by ffmpeg at `fps`, each stamped with its
 * time in the stream (frame k at k / fps): a video file (played in real time unless `realtime:
 * false`), a stream URL (http(s) including HLS, rtsp, rtmp, srt, udp, tcp), or a camera
 * (`/dev/videoN`). Memory holds one frame at a time. The frames end when the source does, or when
 * `signal` aborts; a source ffmpeg cannot read is a VideoError with ffmpeg's last line.
 */
export async function* liveVideoFrames(source: string, options: LiveVideoOptions = {}): AsyncGenerator<TimedFrame> {
  const { fps = 1, realtime = true, maxPixels = DEFAULT_MAX_PIXELS, signal } = options;
  if (!(Number.isFinite(fps) && fps > 0)) throw new VideoError(source, `fps must be a number > 0, got ${fps}`);
  const args = ['-v', 'error', '-nostdin', ...(await sourceArgs(source, realtime)), '-map', '0:v:0', '-vf', `fps=${fps}`, '-f', 'image2pipe', '-c:v', 'ppm', '-pix_fmt', 'rgb24', 'pipe:1'];
  if (signal?.aborted) return;
  const ffmpeg = await startFfmpeg(args, source, signal);
  // The pipe's chunks are joined once a frame is complete (not at each chunk: a 4K frame is hundreds of them).
  let pending: Buffer[] = [];
  let have = 0;
  let header: ReturnType<typeof ppmHeader>;
  let index = 0;
  try {
    for await (const chunk of ffmpeg.stdout) {
      pending.push(chunk);
      have += chunk.length;
      for (;;) {
        if (!header) {
          if (have === 0) break;
          pending = [Buffer.concat(pending, have)];
          header = ppmHeader(pending[0], source);
          if (!header) break;
          if (header.width * header.height > maxPixels) throw new VideoError(source, `${header.width}x${header.height} = ${header.width * header.height} pixels a frame is more than the limit of ${maxPixels} (option maxPixels)`);
        }
        const { width, height, headerBytes } = header;
        const end = headerBytes + width * height * 3;
        if (have < end) break;
        const all = Buffer.concat(pending, have);
        yield { width, height, data: new Uint8Array(all.subarray(headerBytes, end)), time: index++ / fps };
        pending = [all.subarray(end)];
        have -= end;
        header = undefined;
      }
    }
    const { code, message } = await ffmpeg.exit();
    if (signal?.aborted) return;
    if (code !== 0) throw new VideoError(source, `cannot be read: ${message}`);
    if (index === 0) throw new VideoError(source, 'has no decodable frames');
  } finally {
    ffmpeg.stop();
  }
}
