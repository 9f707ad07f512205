import { InvalidOptionError } from '@llava-mini/core';
import { Redis } from 'ioredis';
import { jobKey, type JobId } from '../jobs.js';

/** Where a queue lives: a Redis URL and the queue's name (several batches can share one Redis). */
export interface QueueAddress {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url: string;
  /** Default 'llava-mini'. */
  name?: string;
}

export const DEFAULT_QUEUE = 'llava-mini';
/** BullMQ's default key prefix; our own keys sit beside the queue's under it. */
const PREFIX = 'bull';

export function checkAddress(a: QueueAddress): Required<QueueAddress> {
  let url: URL;
  try {
    url = new URL(a.url);
  } catch {
    throw new InvalidOptionError(`--queue must be a redis:// URL, got ${JSON.stringify(a.url)}`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new InvalidOptionError(`--queue must be a redis:// or rediss:// URL, got ${JSON.stringify(a.url)}`);
  const name = a.name ?? DEFAULT_QUEUE;
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new InvalidOptionError(`the queue name must be letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`);
  return { url: a.url, name };
}

/**
 * An ioredis connection as BullMQ needs it. `maxRetriesPerRequest: null` lets blocking commands
 * wait through a Redis restart instead of failing the worker (BullMQ requires it for workers).
 */
export function connect(url: string, role: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, connectionName: `llava-mini-${role}`, lazyConnect: false });
}

/** Our keys beside BullMQ's: the ids ever enqueued, the ids collected, the live workers' stats. */
export function keys(name: string) {
  const base = `${PREFIX}:${name}:batch`;
  return { ids: `${base}:ids`, collected: `${base}:collected`, workers: `${base}:workers`, worker: (w: string) => `${base}:worker:${w}` };
}

/**
 * BullMQ job ids may not be integers or contain ':', so a job's id maps to one with a prefix that
 * keeps the two forms apart: 'i-' + the id when it is plain, 'x-' + its base64url otherwise.
 */
export function bullJobId(id: JobId): string {
  const key = jobKey(id);
  return /^[A-Za-z0-9._-]+$/.test(key) ? `i-${key}` : `x-${Buffer.from(key).toString('base64url')}`;
}
