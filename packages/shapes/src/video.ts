import { spawn } from 'node:child_process';
import { ffmpegBinary } from '@llava-mini/encoder/node';
import sharp from 'sharp';
import { type Clip, clipFrame } from './clip.js';
import { renderScene } from './render.js';

/** A clip's frames as raw RGB, drawn like pictures (antialiasing, noise) at the clip's size. */
async function rawFrames(clip: Clip, noiseSeed: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let t = 0; t < clip.frames; t++) {
    const png = await renderScene({ ...clipFrame(clip, t), format: 'png' }, noiseSeed + t);
    out.push(await sharp(png).removeAlpha().raw().toBuffer());
  }
  return out;
}

const CODEC_ARGS: Record<Clip['container'], string[]> = {
  // yuv420p: what phones and browsers write and play; it is also what halves the chroma the model sees.
  mp4: ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', '-movflags', '+faststart'],
  webm: ['-c:v', 'libvpx-vp9', '-b:v', '0', '-crf', '32', '-deadline', 'realtime', '-cpu-used', '8', '-pix_fmt', 'yuv420p'],
};

/**
 * Encode a clip as a real video file at 1 fps (H.264 in MP4 or VP9 in WebM, as the clip says)
 * through the ffmpeg the runtime decodes with, to `file`.
 */
export async function writeClipVideo(clip: Clip, file: string, noiseSeed = 0): Promise<void> {
  const frames = await rawFrames(clip, noiseSeed);
  const { width, height } = clip.scene;
  const args = ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', '1', '-i', 'pipe:0', ...CODEC_ARGS[clip.container], '-r', '1', '-threads', '1', file];
  const child = spawn(await ffmpegBinary('ffmpeg'), args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-2000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg could not write ${file}: ${err.trim() || `exit ${code}`}`))));
  });
  child.stdin.on('error', () => {}); // a failed ffmpeg closes its input; 'close' reports why
  for (const f of frames) child.stdin.write(f);
  child.stdin.end();
  await done;
}
