/**
 * LLAVA_MINI_DEBUG=1 turns on what is noise in normal use: which devices `device: 'auto'` passed
 * over, and the CLI's stack traces. Read from `process.env` where there is one (Node), else off.
 */
export function debugEnabled(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.LLAVA_MINI_DEBUG;
  return v !== undefined && v !== '' && v !== '0' && v !== 'false';
}
