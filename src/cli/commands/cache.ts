import { Command } from 'commander';
import { BlobCache } from '../../cache/index.ts';
import { cacheRoot, withCacheOptions } from '../cache-options.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import { parseDuration } from '../options.ts';
import { formatBytes } from '../render/progress.ts';

export function cacheCommand(io: CliIo): Command {
  const cmd = new Command('cache').description('list or prune the cache of verified blobs and manifests');
  const ls = withCacheOptions(
    new Command('ls').description('list cached blobs').option('--json', 'print a JSON array'),
  ).action(async (flags: { cacheDir?: string; json?: boolean }) => {
    const root = cacheRoot(flags, io);
    const entries = await new BlobCache(root).list();
    if (flags.json) {
      await writeJson(
        io.out,
        entries.map((e) => ({ digest: e.digest, size: e.size, modified: new Date(e.mtimeMs).toISOString() })),
      );
      return;
    }
    for (const e of entries) await writeLine(io.out, `${e.digest}  ${formatBytes(e.size)}`);
    io.err.write(
      `${entries.length} entries, ${formatBytes(entries.reduce((n, e) => n + e.size, 0))} in ${root}\n`,
    );
  });
  const prune = withCacheOptions(
    new Command('prune')
      .description('remove cached blobs (all, or those older than --older-than)')
      .option(
        '--older-than <duration>',
        'only entries last written before this long ago (e.g. 7d, 12h, 30m)',
      ),
  ).action(async (flags: { cacheDir?: string; olderThan?: string }) => {
    const root = cacheRoot(flags, io);
    let olderThanMs: number | undefined;
    if (flags.olderThan) {
      const m = /^(\d+)([dh])$/.exec(flags.olderThan);
      olderThanMs = m
        ? Number(m[1]) * (m[2] === 'd' ? 86_400_000 : 3_600_000)
        : parseDuration(flags.olderThan);
    }
    const r = await new BlobCache(root).prune({ olderThanMs });
    await writeLine(io.out, `removed ${r.removed} entries (${formatBytes(r.bytes)}) from ${root}`);
  });
  cmd.addCommand(ls);
  cmd.addCommand(prune);
  cmd.addHelpText('after', '\nExamples:\n  lading cache ls\n  lading cache prune --older-than 30d');
  return cmd;
}
