import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The Redis the queue tests use: LLAVA_MINI_TEST_REDIS when set (.ci/run starts one on loopback),
 * else a redis-server of our own on a free loopback port. Without either the tests are skipped,
 * except under CI=true, where a missing Redis is a failure.
 */
export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

export const haveRedis = Boolean(process.env.LLAVA_MINI_TEST_REDIS) || spawnSync('redis-server', ['--version']).status === 0;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startRedis(): Promise<TestRedis> {
  if (process.env.LLAVA_MINI_TEST_REDIS) return { url: process.env.LLAVA_MINI_TEST_REDIS, stop: async () => undefined };
  if (!haveRedis) throw new Error('redis-server is not installed (apt-get install redis-server), and LLAVA_MINI_TEST_REDIS is not set');
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'llava-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => (c.end(), resolve(true)));
      c.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
