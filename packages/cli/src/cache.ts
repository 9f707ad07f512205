// `llava-mini cache ls|rm`: what the hub cache (downloads, shared with the Python tools) and the
// converted-model cache hold, and freeing a repository from both.
import { InvalidOptionError } from '@llava-mini/core';
import { listCache, parseHubId, removeFromCache } from '@llava-mini/pipeline/node';

const size = (bytes: number) => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`);

export async function cacheLsCommand(flags: { json?: boolean }): Promise<void> {
  const entries = await listCache();
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return;
  }
  if (!entries.length) {
    process.stdout.write('nothing cached\n');
    return;
  }
  const rows = entries.map((e) => [e.repo, e.kind === 'converted' ? `converted ${e.variant}` : 'download', e.commits.map((c) => c.slice(0, 10)).join(','), size(e.bytes), e.path]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  for (const r of rows) process.stdout.write(`${r.map((c, i) => (i < 4 ? c.padEnd(widths[i] as number) : c)).join('  ')}\n`);
}

export async function cacheRmCommand(repo: string): Promise<void> {
  const id = parseHubId(repo);
  if (!id || id.revision !== 'main') throw new InvalidOptionError(`cache rm takes a repository, org/name; got ${JSON.stringify(repo)}`);
  const removed = removeFromCache(id.repo);
  process.stdout.write(removed.length ? removed.map((f) => `removed ${f}\n`).join('') : `nothing cached for ${id.repo}\n`);
}
