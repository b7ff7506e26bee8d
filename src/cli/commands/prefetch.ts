import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Command, Option } from 'commander';
import { hostArchitecture } from '../../build/index.ts';
import { BlobCache, IndexStore } from '../../cache/index.ts';
import { parseDigest } from '../../digest/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { normaliseArch, type Platform, parsePlatform } from '../../image/index.ts';
import {
  hashesFor,
  PREFETCH_FORMATS,
  type PrefetchFormat,
  type PrefetchResult,
  platformNeedsShowing,
  prefetch,
  renderDocker2Nix,
  renderDockerTools,
  renderInfoLines,
  renderJson,
  renderNix2Container,
} from '../../pin/index.ts';
import { parseReference } from '../../reference/index.ts';
import { makeTempDir } from '../../util/index.ts';
import { type CacheFlags, cacheRoot, withCacheOptions } from '../cache-options.ts';
import { action, type CommandContext } from '../context.ts';
import { type CliIo, writeErr, writeLine } from '../io.ts';
import { onlyOnce, type RegistryFlags, withRegistryOptions } from '../options.ts';
import { prepareOutput } from '../output-path.ts';

interface Flags extends CacheFlags {
  imageName?: string;
  imageTag?: string;
  imageDigest?: string;
  os?: string;
  arch?: string;
  platform?: string;
  finalImageName?: string;
  finalImageTag?: string;
  json?: boolean;
  quiet?: boolean;
  legacySha256?: boolean;
  format?: PrefetchFormat;
  pinInstance?: boolean;
  output?: string;
  dir?: string;
}

/** The image as nix-prefetch-docker's arguments name it, plus `name:tag` and `name@digest`. */
interface ImageArgs {
  imageName: string;
  tag?: string;
  digest?: string;
}

/** The platform flags: what to select, and whether it was asked for. */
interface PlatformArgs {
  platform: Platform;
  /** Any of --platform, --os, --arch given: pullImage then gets `os`/`arch` printed. */
  given: boolean;
  /** A single-platform image of another platform is refused (linux alone is no choice). */
  explicit: boolean;
}

export function prefetchCommand(io: CliIo): Command {
  const cmd = new Command('prefetch')
    .description(
      'pin an image for Nix: the hashes dockerTools.pullImage and nix2container.pullImage expect (a nix-prefetch-docker drop-in)',
    )
    .argument('[image]', 'image name (a tag or digest may be attached, or given as the next argument)')
    .argument('[tag-or-digest]', 'tag, or digest if it contains "sha256"')
    .option('--image-name <name>', 'image name')
    .option('--image-tag <tag>', 'tag (default latest)')
    .option('--image-digest <digest>', 'manifest digest to pin')
    .option('--os <os>', 'OS to select from a multi-arch image (default linux)')
    .option(
      '--arch <arch>',
      'architecture to select (default amd64, as nix-prefetch-docker; x86_64/aarch64 understood)',
    )
    .option(
      '--platform <os/arch[/variant]>',
      'platform to select (instead of --os/--arch)',
      onlyOnce('--platform'),
    )
    .option('--final-image-name <name>', 'name written into the archive (default: the image name)')
    .option('--final-image-tag <tag>', 'tag written into the archive (default: the tag, or latest)')
    .option(
      '--json',
      'print the attrset as JSON (as nix-prefetch-docker --json); with --format nix2container too',
    )
    .option('--quiet', 'no "->" lines on stderr')
    .option('--legacy-sha256', 'print sha256 = "<nix32>" instead of hash (older nixpkgs)')
    .addOption(
      new Option('--format <format>', 'what to print').choices(PREFETCH_FORMATS).default('dockertools'),
    )
    .option('--pin-instance', "pin the platform's manifest digest instead of the index digest")
    .option('-o, --output <file>', 'also write the docker-archive (what pullImage builds) to FILE')
    .option('--dir <dir>', "also write skopeo's dir: layout (what nix2container.pullImage builds) to DIR");
  withCacheOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The hashes are computed by lading itself, byte-identical to what skopeo + Nix produce; no Nix,
skopeo or Docker is needed. A repeated prefetch of the same image only sends a HEAD.

Examples:
  lading prefetch nixos/nix 2.19.3
  lading prefetch --image-name ghcr.io/org/app --image-tag 1.4 --arch arm64 --authfile auth.json
  lading prefetch --format nix2container alpine 3.20
  lading prefetch --format manifest alpine 3.20 > manifest.json   # for nix2container.pullImageFromManifest`,
  );
  return cmd.action(action<Flags, [string | undefined, string | undefined]>(io, runPrefetch));
}

async function runPrefetch(
  ctx: CommandContext<Flags & RegistryFlags>,
  imageArg: string | undefined,
  second: string | undefined,
): Promise<void> {
  const { io, flags: f } = ctx;
  checkFlags(f, io);
  const image = imageArgs(f, imageArg, second);
  const platform = platformArgs(f);
  const archivePath = f.output ? await prepareOutput(io.cwd, f.output, 'file', `-o ${f.output}`) : undefined;
  const dirPath = f.dir ? await prepareOutput(io.cwd, f.dir, 'directory', `--dir ${f.dir}`) : undefined;
  const root = cacheRoot(f, io);
  // Hashing reads blobs more than once, so --no-cache still stages them, in a temp dir.
  const scratch = f.cache === false ? await makeTempDir(tmpdir(), 'prefetch') : undefined;
  const progress = ctx.progress({ label: `prefetch ${image.imageName}`, plainFinal: false });
  try {
    const r = await prefetch({
      pool: ctx.pool(),
      imageName: image.imageName,
      tag: image.tag,
      digest: image.digest ? parseDigest(image.digest, 'image digest') : undefined,
      platform: platform.platform,
      platformExplicit: platform.explicit,
      pinInstance: f.pinInstance,
      finalImageName: f.finalImageName,
      finalImageTag: f.finalImageTag,
      cache: new BlobCache(scratch ?? root),
      index: scratch ? undefined : new IndexStore(root),
      archivePath,
      dirPath,
      jobs: f.jobs,
      onFetch: (n) => progress.addBytes(n),
      want: hashesFor(f.format ?? 'dockertools'),
    });
    progress.finish();
    if (!f.quiet && f.format === 'dockertools') writeInfo(io, f, r);
    await printResult(io, f, r, platform.given);
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

/** Flags that cannot go together, and an environment nix-prefetch-docker would read differently. */
function checkFlags(f: Flags, io: CliIo): void {
  if (f.json && (f.format === 'docker2nix' || f.format === 'manifest' || f.format === 'json'))
    throw new LadingError(
      ErrorCode.BadArgument,
      `--json does not apply to --format ${f.format} (${f.format === 'docker2nix' ? 'a Nix function' : 'already JSON'})`,
    );
  // nix-prefetch-docker hashes with NIX_HASH_ALGO (default sha256); pullImage's fetchers take
  // sha256 here, so another algorithm is refused rather than silently ignored.
  const algo = io.env.NIX_HASH_ALGO;
  if (algo !== undefined && algo !== '' && algo !== 'sha256')
    throw new LadingError(
      ErrorCode.BadArgument,
      `NIX_HASH_ALGO=${algo} is not supported: lading computes sha256 hashes only (unset it or set sha256)`,
    );
}

function imageArgs(f: Flags, imageArg: string | undefined, second: string | undefined): ImageArgs {
  let imageName = f.imageName ?? imageArg;
  if (!imageName) throw new LadingError(ErrorCode.BadArgument, 'prefetch needs an image name (see --help)');
  let tag = f.imageTag;
  let digest = f.imageDigest;
  if (second) {
    if (second.includes('sha256')) digest ??= second;
    else tag ??= second;
  }
  // Friendlier than nix-prefetch-docker: accept name:tag and name@digest.
  const parsed = parseReference(imageName, { defaultTag: null });
  if (parsed.digest || parsed.tag) {
    const at = imageName.lastIndexOf('@');
    const bare = at === -1 ? imageName : imageName.slice(0, at);
    const colon = bare.lastIndexOf(':');
    imageName = parsed.tag && colon > bare.lastIndexOf('/') ? bare.slice(0, colon) : bare;
    tag ??= parsed.tag;
    digest ??= parsed.digest;
  }
  return { imageName, tag, digest };
}

function platformArgs(f: Flags): PlatformArgs {
  const platform = f.platform
    ? parsePlatform(f.platform)
    : parsePlatform(`${f.os ?? 'linux'}/${normaliseArch(f.arch ?? 'amd64')}`);
  return {
    platform,
    given: f.platform !== undefined || f.os !== undefined || f.arch !== undefined,
    explicit: Boolean(f.platform || f.arch || (f.os && f.os !== 'linux')),
  };
}

/** nix-prefetch-docker's `->` lines on stderr, and the index and instance digests when there is an index. */
function writeInfo(io: CliIo, f: Flags, r: PrefetchResult): void {
  writeErr(io, `${renderInfoLines(r, { legacySha256: f.legacySha256 }).join('\n')}\n`);
  if (r.indexDigest)
    writeErr(
      io,
      `-> IndexDigest: ${r.indexDigest}\n-> InstanceDigest: ${r.instanceDigest} (${r.platform})\n`,
    );
}

async function printResult(io: CliIo, f: Flags, r: PrefetchResult, platformGiven: boolean): Promise<void> {
  switch (f.format) {
    case 'nix2container':
      return writeLine(io.out, renderNix2Container(r, { json: f.json }));
    case 'manifest':
      // The bytes exactly as served: nix2container's pullImageFromManifest reads them as its lock.
      return new Promise<void>((resolve, reject) =>
        io.out.write(r.manifest, (e) => (e ? reject(e) : resolve())),
      );
    case 'docker2nix':
      return writeLine(io.out, renderDocker2Nix(r));
    case 'json':
      return writeLine(io.out, renderJson(r, { legacySha256: f.legacySha256 }));
    default:
      return writeLine(
        io.out,
        renderDockerTools(r, {
          json: f.json,
          legacySha256: f.legacySha256,
          showPlatform: platformNeedsShowing(r, platformGiven, hostArchitecture(process.arch)),
        }),
      );
  }
}
