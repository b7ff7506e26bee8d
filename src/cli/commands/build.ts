import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  type BuildSpec,
  BuiltImage,
  FileLayerDigestCache,
  hostArchitecture,
  parseBuildSpec,
  specError,
} from '../../build/index.ts';
import { type BlobCache, BlobInfoCache } from '../../cache/index.ts';
import { checkCompressLevel, copyImage, openSink, openSource } from '../../copy/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import type { ImageSource } from '../../image/index.ts';
import { formatLocation, parseLocation } from '../../transports/index.ts';
import { type CacheFlags, cacheFrom, cacheRoot, withCacheOptions } from '../cache-options.ts';
import { action, type CommandContext } from '../context.ts';
import { type CliIo, writeResult } from '../io.ts';
import { type RegistryFlags, withRegistryOptions } from '../options.ts';
import { prepareDestination } from '../output-path.ts';

interface Flags extends CacheFlags {
  output: string;
  json?: boolean;
  quiet?: boolean;
  jobs?: number;
  destCompressFormat?: 'gzip' | 'zstd' | 'none';
  destCompressLevel?: string;
}

async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of stdin) parts.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(parts).toString('utf8');
}

export function buildCommand(io: CliIo): Command {
  const cmd = new Command('build')
    .description('build a reproducible image from directories and Nix store paths (docs/build-spec.md)')
    .argument('<spec>', 'the build spec (JSON file, or - for stdin)')
    .requiredOption(
      '-o, --output <destination>',
      'where the image goes: oci:DIR[:TAG], docker://REF, dir:DIR, …',
    )
    .addOption(
      new Option(
        '--dest-compress-format <format>',
        'compress layers for DEST: gzip, zstd or none (default: as copy does, gzip for registries)',
      ).choices(['gzip', 'zstd', 'none']),
    )
    .option('--dest-compress-level <n>', 'compression level for --dest-compress-format (gzip 1-9, zstd 1-22)')
    .option('--json', 'print the result as JSON');
  withCacheOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The same spec gives the same layer, config and manifest digests on every machine and run.
SOURCE_DATE_EPOCH sets "created" when the spec has none. Prints the manifest digest. Layer digests
are remembered in the cache (by file names, modes, sizes, inodes and change times), so unchanged
layers are not hashed again; --no-cache hashes every layer.

Examples:
  lading build image.json -o oci:/tmp/app:latest
  nix-build … && lading build spec.json -o docker://127.0.0.1:5000/app:1.0`,
  );
  return cmd.action(action<Flags, [string]>(io, (ctx, specArg) => runBuild(ctx, specArg)));
}

/** Builds the image `specArg` describes and copies it to --output. */
async function runBuild(ctx: CommandContext<Flags & RegistryFlags>, specArg: string): Promise<void> {
  const { io, flags } = ctx;
  const dst = await prepareDestination(io.cwd, parseLocation(flags.output));
  const fmt = flags.destCompressFormat;
  // The library's check, with the flags' names.
  const compressLevel = checkCompressLevel(fmt, flags.destCompressLevel, {
    format: '--dest-compress-format',
    level: '--dest-compress-level',
  });
  const spec = await readSpec(io, specArg);
  const cache = await cacheFrom(flags, io);
  const base = spec.fromImage ? openBase(ctx, spec.fromImage, cache) : undefined;
  const digestCache = cache
    ? new FileLayerDigestCache(join(cacheRoot(flags, io), 'build-layers'))
    : undefined;
  const image = await BuiltImage.build(spec, `build ${specArg}`, {
    base,
    digestCache,
    hostArchitecture: hostArchitecture(process.arch),
  }).catch(async (err: unknown) => {
    await base?.close();
    throw err;
  });
  const progress = ctx.progress({ label: `build → ${formatLocation(dst)}` });
  const sink = openSink(dst, { pool: ctx.pool(), stdout: io.out, env: io.env });
  try {
    const r = await copyImage(image, sink, {
      onEvent: progress.onEvent,
      compress: fmt,
      compressLevel,
      jobs: flags.jobs,
      // Where blobs were seen, and which compressed blobs hold which layers: cross-repository
      // mounts and no second compression, as for copy.
      blobInfo: cache ? new BlobInfoCache(cache.root) : undefined,
    });
    progress.finish();
    const text = flags.json
      ? JSON.stringify(
          {
            destination: formatLocation(dst),
            digest: r.digest,
            config: image.configDigest,
            layers: image.layers.map((l) => l.descriptor.digest),
            blobsCopied: r.blobsCopied,
            blobsSkipped: r.blobsSkipped,
          },
          null,
          2,
        )
      : r.digest;
    await writeResult(dst, io, flags.quiet, text);
  } finally {
    await image.close();
  }
}

/** The build spec from its file (or stdin with `-`), parsed and checked; its paths are relative to its file. */
async function readSpec(io: CliIo, specArg: string): Promise<BuildSpec> {
  let text: string;
  let baseDir = io.cwd;
  if (specArg === '-') text = await readStdin(io.stdin);
  else {
    const file = resolve(io.cwd, specArg);
    baseDir = dirname(file);
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new LadingError(
        ErrorCode.BadArgument,
        `cannot read build spec ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
        { path: file },
      );
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw specError(specArg === '-' ? 'stdin' : specArg, `not JSON: ${(err as Error).message}`);
  }
  return parseBuildSpec(json, { baseDir, sourceDateEpoch: io.env.SOURCE_DATE_EPOCH });
}

/** The spec's base image, opened (a location it cannot open is the spec's error). */
function openBase(
  ctx: CommandContext<Flags & RegistryFlags>,
  fromImage: string,
  cache: BlobCache | undefined,
): ImageSource {
  const { io } = ctx;
  try {
    return openSource(parseLocation(fromImage), { pool: ctx.pool(), cache, stdin: io.stdin, env: io.env });
  } catch (err) {
    throw specError('fromImage', (err as Error).message);
  }
}
