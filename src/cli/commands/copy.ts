import { Command, Option } from 'commander';
import { BlobInfoCache } from '../../cache/index.ts';
import { checkCompressLevel, copyImage, openSink, openSource } from '../../copy/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { type Platform, parsePlatform } from '../../image/index.ts';
import { formatLocation, type ImageLocation, parseLocation, TRANSPORTS } from '../../transports/index.ts';
import { writeOutputFile } from '../../util/index.ts';
import { type CacheFlags, cacheFrom, withCacheOptions } from '../cache-options.ts';
import { action, type CommandContext } from '../context.ts';
import { type CliIo, writeResult } from '../io.ts';
import {
  type PlatformFlags,
  platformFrom,
  type RegistryFlags,
  type SideRegistryFlags,
  withPlatformOptions,
  withRegistryOptions,
  withSideRegistryOptions,
} from '../options.ts';
import { prepareDestination, prepareOutput } from '../output-path.ts';

interface Flags extends PlatformFlags, CacheFlags, SideRegistryFlags {
  all?: boolean;
  preserveDigests?: boolean;
  format?: 'oci' | 'v2s2';
  additionalTag?: string[];
  json?: boolean;
  quiet?: boolean;
  digestfile?: string;
  destCompressFormat?: 'gzip' | 'zstd' | 'none';
  destCompressLevel?: string;
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** `pull`'s source: a registry reference, with or without `docker://`; any other transport is refused. */
function pullSource(arg: string): ImageLocation {
  if (arg.startsWith('docker://')) return parseLocation(arg);
  const colon = arg.indexOf(':');
  const prefix = colon === -1 ? '' : arg.slice(0, colon);
  if (LOCAL_TRANSPORTS.has(prefix))
    throw new LadingError(
      ErrorCode.BadArgument,
      `pull takes a registry reference (NAME[:TAG], or docker://NAME[:TAG]), not ${JSON.stringify(arg)}: to copy from ${prefix}:, run lading copy ${arg} DESTINATION`,
    );
  return parseLocation(`docker://${arg}`);
}

/** Every transport but the registry's: what `pull` refuses, pointing to `copy`. */
const LOCAL_TRANSPORTS = new Set<string>(TRANSPORTS.filter((t) => t !== 'docker'));

export function copyCommand(io: CliIo, name: 'copy' | 'pull' = 'copy'): Command {
  const cmd = new Command(name);
  if (name === 'copy') {
    cmd
      .description('copy an image between registries, OCI layouts, docker-archives and dir: layouts')
      .argument('<source>', 'docker://REF, oci:DIR[:TAG], dir:DIR, … or a bare reference')
      .argument('<destination>', 'docker://REF, oci:DIR[:TAG], dir:DIR, …');
  } else {
    cmd
      .description('pull an image from a registry to a local destination (copy with a registry source)')
      .argument('<image>', 'image reference')
      .argument('<destination>', 'oci:DIR[:TAG], dir:DIR, …');
  }
  withCopyOptions(cmd);
  return cmd.action(
    action<Flags, [string, string]>(io, async (ctx, srcArg, dstArg) => {
      const src = name === 'pull' ? pullSource(srcArg) : parseLocation(srcArg);
      await runCopy(ctx, src, parseLocation(dstArg));
    }),
  );
}

/** Adds copy's (and pull's) options and help. */
function withCopyOptions(cmd: Command): void {
  cmd
    .option('--all', 'copy every platform of an index (the index keeps its digest)')
    .addOption(
      new Option('--format <format>', 'convert manifests (digests change): oci or v2s2').choices([
        'oci',
        'v2s2',
      ]),
    )
    .addOption(
      new Option(
        '--dest-compress-format <format>',
        'recompress layers (digests change): gzip, zstd or none',
      ).choices(['gzip', 'zstd', 'none']),
    )
    .option('--dest-compress-level <n>', 'compression level for --dest-compress-format (gzip 1-9, zstd 1-22)')
    .option(
      '--preserve-digests',
      'refuse any change of digest (Docker manifests into an OCI layout are otherwise converted)',
    )
    .option('--additional-tag <tag>', 'also push the image under this tag (registry destinations)', collect)
    .option('--json', 'print the result as JSON')
    .option('--digestfile <file>', "write the top manifest's digest to FILE (as skopeo does)");
  withPlatformOptions(cmd, { several: true });
  withCacheOptions(cmd);
  withRegistryOptions(cmd);
  withSideRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
--platform may be given several times (or comma-separated); with an index destination only those
platforms are kept. Digests never change unless platforms are filtered out, --format converts,
--dest-compress-format recompresses, or Docker manifests go to oci:/oci-archive: (converted to OCI,
as skopeo does; --preserve-digests refuses instead). Uncompressed layers sent to a registry are gzip-compressed
(as skopeo does) unless --dest-compress-format none.

Examples:
  lading copy docker://alpine:3.20 oci:/tmp/alpine:3.20
  lading copy --all ghcr.io/org/app:1.4 docker://127.0.0.1:5000/app:1.4
  lading pull alpine dir:/tmp/alpine`,
  );
}

/** Copies `src` to `asked`: every path written is checked first, then the library copies. */
async function runCopy(
  ctx: CommandContext<Flags & RegistryFlags>,
  src: ImageLocation,
  asked: ImageLocation,
): Promise<void> {
  const { io, flags } = ctx;
  // The library's check, with the flags' names.
  const compressLevel = checkCompressLevel(flags.destCompressFormat, flags.destCompressLevel, {
    format: '--dest-compress-format',
    level: '--dest-compress-level',
  });
  // Every path written is checked (and its parents made) before anything is read.
  const dst = await prepareDestination(io.cwd, asked);
  const digestfile = flags.digestfile
    ? await prepareOutput(io.cwd, flags.digestfile, 'file', `--digestfile ${flags.digestfile}`)
    : undefined;
  const cache = await cacheFrom(flags, io);
  const platforms = platformsAsked(flags);
  const progress = ctx.progress({ label: `${formatLocation(src)} → ${formatLocation(dst)}` });
  const source = openSource(src, { pool: ctx.pool('src'), cache, stdin: io.stdin, env: io.env });
  const sink = openSink(dst, {
    pool: ctx.pool('dest'),
    cache,
    tags: flags.additionalTag,
    source: src,
    stdout: io.out,
    env: io.env,
  });
  try {
    const r = await copyImage(source, sink, {
      platforms,
      all: flags.all,
      format: flags.format,
      preserveDigests: flags.preserveDigests,
      compress: flags.destCompressFormat,
      compressLevel,
      jobs: flags.jobs,
      blobInfo: cache ? new BlobInfoCache(cache.root) : undefined,
      onEvent: progress.onEvent,
    });
    progress.finish();
    if (digestfile) await writeOutputFile(digestfile, r.digest);
    const text = flags.json
      ? JSON.stringify({ source: formatLocation(src), destination: formatLocation(dst), ...r }, null, 2)
      : r.digest;
    await writeResult(dst, io, flags.quiet, text);
  } finally {
    await source.close();
  }
}

/**
 * The platforms asked for (--platform, several allowed, or the --override-* flags), or undefined
 * for the host's. Platforms asked for are explicit: the library refuses a single-platform source
 * of another.
 */
function platformsAsked(flags: Flags): Platform[] | undefined {
  if (flags.platform) return flags.platform.split(',').map((p) => parsePlatform(p));
  const asked = platformFrom(flags);
  return asked.explicit ? [asked.platform] : undefined;
}
