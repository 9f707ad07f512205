// The pictures of a request, made safe on the HTTP thread before the request takes a worker: how
// many, where from (data URLs always; local files only under --allowed-media-path; remote URLs only
// with --allow-remote-media), and each image's size from its header before it is decoded (sharp
// decodes on libuv's threads, not the event loop). Workers get pixels, or a local video file.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage, fileSystemError, LlavaMiniError } from '@llava-mini/core';
import { loadImage } from '@llava-mini/encoder/node';
import { dataUrlBytes, type MediaRef } from '@llava-mini/pipeline/node';
import { fromLibraryError, HttpError, httpError, serializeError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { RemoteMediaFetcher } from './remote-media.js';

export type ResolvedMedia = { kind: 'image'; image: { width: number; height: number; data: Uint8Array } } | { kind: 'video'; path: string };

export interface RequestMedia {
  items: ResolvedMedia[];
  /** Pixel buffers to move (not copy) to the worker. */
  transfer: ArrayBuffer[];
  /** Removes temporary video files; call when the request ends. */
  cleanup(): Promise<void>;
}

type MediaOptions = Pick<ResolvedOptions, 'maxImages' | 'maxImagePixels' | 'allowedMediaPaths'>;

const bad = (param: string, code: string, message: string) => httpError(400, 'invalid_request_error', code, message, { param });

/** `p` is `root` or below it (both absolute and normalised). */
const under = (root: string, p: string) => {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
};

async function insideAllowed(p: string, param: string, o: MediaOptions): Promise<string> {
  if (o.allowedMediaPaths.length === 0) throw bad(param, 'local_media_disabled', 'local file paths are off on this server (start it with --allowed-media-path DIR); send a data URL');
  const notAllowed = () => bad(param, 'media_path_not_allowed', `${p} is outside the folders this server may read (--allowed-media-path)`);
  // The path as written first, before the file system is asked anything: a path outside every folder
  // is refused the same whether or not it exists, so answers cannot probe the disk.
  const asked = path.resolve(p);
  const roots = await Promise.all(o.allowedMediaPaths.map((dir) => fs.realpath(dir).catch(() => dir)));
  if (![...o.allowedMediaPaths, ...roots].some((dir) => under(dir, asked))) throw notAllowed();
  let real: string;
  try {
    real = await fs.realpath(asked);
  } catch (err) {
    throw bad(param, 'invalid_image', `${p}: cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
  // Then the file resolved through symlinks, so a link inside the folder cannot lead out of it.
  if (roots.some((root) => real !== root && under(root, real))) return real;
  throw notAllowed();
}

export async function resolveMedia(refs: readonly MediaRef[], o: MediaOptions, remote: RemoteMediaFetcher | undefined, signal?: AbortSignal): Promise<RequestMedia> {
  if (refs.length > o.maxImages) throw bad('messages', 'too_many_images', `the request has ${refs.length} pictures, more than this server's limit of ${o.maxImages}`);
  const temps: string[] = [];
  const cleanup = async () => {
    await Promise.all(temps.map((t) => fs.rm(t, { recursive: true, force: true })));
  };
  try {
    const items: ResolvedMedia[] = [];
    for (const ref of refs) items.push(await resolveOne(ref, o, remote, temps, signal));
    const transfer = items.flatMap((m) => (m.kind === 'image' ? [m.image.data.buffer as ArrayBuffer] : []));
    return { items, transfer, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function resolveOne(ref: MediaRef, o: MediaOptions, remote: RemoteMediaFetcher | undefined, temps: string[], signal?: AbortSignal): Promise<ResolvedMedia> {
  const { param } = ref;
  if (typeof ref.source !== 'string') throw bad(param, 'invalid_value', "'image' parts are for the in-process API; over HTTP send an image_url");
  const url = ref.source;
  let bytes: Uint8Array | undefined;
  let localPath: string | undefined;
  if (url.startsWith('data:')) {
    const mime = /^data:([^,;]*)/.exec(url)?.[1]?.toLowerCase() ?? '';
    if (mime && !mime.startsWith(`${ref.kind}/`)) throw bad(param, `invalid_${ref.kind}`, `'${param}' is a data URL of ${mime}, not of an ${ref.kind}`);
    try {
      bytes = dataUrlBytes(url);
    } catch (err) {
      throw bad(param, `invalid_${ref.kind}`, `'${param}': ${errorMessage(err)}`);
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('file:')) {
    if (!remote) throw bad(param, 'remote_media_disabled', 'remote media URLs are off on this server (start it with --allow-remote-media HOST); send a data URL');
    bytes = await remote.fetch(url, param, signal);
  } else {
    let p = url;
    if (url.startsWith('file:')) {
      try {
        p = fileURLToPath(url);
      } catch (err) {
        throw bad(param, 'invalid_value', `'${param}': ${errorMessage(err)}`);
      }
    }
    localPath = await insideAllowed(p, param, o);
  }
  if (ref.kind === 'video') {
    if (localPath) return { kind: 'video', path: localPath };
    // ffmpeg reads files: a video sent inline waits in a private temporary folder for the request's length.
    try {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'llava-serve-'));
      temps.push(dir);
      const file = path.join(dir, `${randomUUID()}.video`);
      await fs.writeFile(file, bytes as Uint8Array, { mode: 0o600 });
      return { kind: 'video', path: file };
    } catch (err) {
      // The server's disk, not the client's request: a 5xx that says how much room the video needed
      // (what was written is removed with the folder when the request fails).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw httpError(507, 'server_error', 'insufficient_storage', `no space left in the server's temporary folder to hold this video (${(bytes as Uint8Array).byteLength} bytes needed)`, { param });
      }
      throw fileSystemError(err) ?? err;
    }
  }
  try {
    const img = await loadImage(localPath ?? (bytes as Uint8Array), { maxPixels: o.maxImagePixels, name: param });
    // Moved to the worker whole: a view into a shared or pooled buffer is copied first.
    const whole = img.data.byteOffset === 0 && img.data.byteLength === img.data.buffer.byteLength;
    return { kind: 'image', image: { width: img.width, height: img.height, data: whole ? img.data : img.data.slice() } };
  } catch (err) {
    if (err instanceof HttpError || !(err instanceof LlavaMiniError)) throw err;
    const api = fromLibraryError(serializeError(err));
    throw new HttpError({ ...api, param, code: /pixels is more than/.test(api.message) ? 'image_too_large' : api.code });
  }
}

/** The request body with each picture part, in the order parseChatRequest found them, replaced by its resolved form. */
export function withResolvedMedia(body: Record<string, unknown>, items: readonly ResolvedMedia[]): Record<string, unknown> {
  let next = 0;
  const messages = (body.messages as { role: string; content: unknown }[]).map((m) => {
    if (m.role !== 'user' || !Array.isArray(m.content)) return m;
    return {
      ...m,
      content: m.content.map((part: { type?: string }) => {
        if (part.type !== 'image_url' && part.type !== 'video_url') return part;
        const item = items[next++];
        return item.kind === 'image' ? { type: 'image', image: item.image } : { type: 'video_url', video_url: { url: item.path } };
      }),
    };
  });
  return { ...body, messages };
}
