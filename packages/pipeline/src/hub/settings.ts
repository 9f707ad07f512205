import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Where models come from and where they are kept, read from the environment as huggingface_hub reads it. */
export interface HubSettings {
  /** HF_ENDPOINT (a mirror), default https://huggingface.co. */
  endpoint: string;
  /** HF_HUB_CACHE, else HF_HOME/hub: the downloads, in the layout the Python tools share. */
  cacheDir: string;
  /** LLAVA_MINI_CACHE, else ~/.cache/llava-mini: converted folders, by repository, commit, dtype and target. */
  convertedDir: string;
  /** HF_TOKEN, else the file `huggingface-cli login` wrote (HF_TOKEN_PATH, default HF_HOME/token). */
  token?: string;
  /** HF_HUB_OFFLINE=1: no request at all; only what the cache holds. */
  offline: boolean;
}

const TRUE = new Set(['1', 'on', 'yes', 'true']);

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const cacheHome = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const hfHome = env.HF_HOME || path.join(cacheHome, 'huggingface');
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir: env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || path.join(hfHome, 'hub'),
    convertedDir: env.LLAVA_MINI_CACHE || path.join(cacheHome, 'llava-mini'),
    token: env.HF_TOKEN || readToken(env.HF_TOKEN_PATH || path.join(hfHome, 'token')),
    offline: TRUE.has((env.HF_HUB_OFFLINE ?? '').toLowerCase()),
  };
}

function readToken(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
