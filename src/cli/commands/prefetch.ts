import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Command, Option } from 'commander';
import { hostArchitecture } from '../../build/index.ts';
import { BlobCache, IndexStore } from '../../cache/index.ts';
import { parseDigest } from '../../digest/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { normaliseArch, type Platform, parsePlatform } from '../../image/index.ts';
import {
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
import { action } from '../context.ts';
import { type CliIo, writeErr, writeLine } from '../io.ts';
import { withRegistryOptions } from '../options.ts';
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
  format?: 'dockertools' | 'nix2container' | 'manifest' | 'docker2nix' | 'json';
  pinInstance?: boolean;
  output?: string;
  dir?: string;
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
    .option('--platform <os/arch[/variant]>', 'platform to select (instead of --os/--arch)')
    .option('--final-image-name <name>', 'name written into the archive (default: the image name)')
    .option('--final-image-tag <tag>', 'tag written into the archive (default: the tag, or latest)')
    .option(
      '--json',
      'print the attrset as JSON (as nix-prefetch-docker --json); with --format nix2container too',
    )
    .option('--quiet', 'no "->" lines on stderr')
    .option('--legacy-sha256', 'print sha256 = "<nix32>" instead of hash (older nixpkgs)')
    .addOption(
      new Option('--format <format>', 'what to print')
        .choices(['dockertools', 'nix2container', 'manifest', 'docker2nix', 'json'])
        .default('dockertools'),
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
  return cmd.action(
    action<Flags, [string | undefined, string | undefined]>(io, async (ctx, imageArg, second) => {
      const f = ctx.flags;
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
      let imageName = f.imageName ?? imageArg;
      if (!imageName)
        throw new LadingError(ErrorCode.BadArgument, 'prefetch needs an image name (see --help)');
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
      let platform: Platform;
      if (f.platform) platform = parsePlatform(f.platform);
      else platform = parsePlatform(`${f.os ?? 'linux'}/${normaliseArch(f.arch ?? 'amd64')}`);
      const platformGiven = f.platform !== undefined || f.os !== undefined || f.arch !== undefined;
      const archivePath = f.output
        ? await prepareOutput(io.cwd, f.output, 'file', `-o ${f.output}`)
        : undefined;
      const dirPath = f.dir ? await prepareOutput(io.cwd, f.dir, 'directory', `--dir ${f.dir}`) : undefined;
      const root = cacheRoot(f, io);
      // Hashing reads blobs more than once, so --no-cache still stages them, in a temp dir.
      const scratch = f.cache === false ? await makeTempDir(tmpdir(), 'prefetch') : undefined;
      const cache = new BlobCache(scratch ?? root);
      const index = scratch ? undefined : new IndexStore(root);
      const progress = ctx.progress({ label: `prefetch ${imageName}`, plainFinal: false });
      try {
        const r = await prefetch({
          pool: ctx.pool(),
          imageName,
          tag,
          digest: digest ? parseDigest(digest, 'image digest') : undefined,
          platform,
          platformExplicit: Boolean(f.platform || f.arch || (f.os && f.os !== 'linux')),
          pinInstance: f.pinInstance,
          finalImageName: f.finalImageName,
          finalImageTag: f.finalImageTag,
          cache,
          index,
          archivePath,
          dirPath,
          jobs: f.jobs,
          onFetch: (n) => progress.addBytes(n),
          // Only what the output shows: the NAR hash needs no decompression, the manifest and
          // docker2nix outputs need no layer at all.
          want: {
            dockerTools: f.format === 'dockertools' || f.format === 'json',
            nix2container: f.format === 'nix2container' || f.format === 'json',
          },
        });
        progress.finish();
        if (!f.quiet && f.format === 'dockertools')
          writeErr(io, `${renderInfoLines(r, { legacySha256: f.legacySha256 }).join('\n')}\n`);
        if (!f.quiet && r.indexDigest && f.format === 'dockertools') {
          writeErr(
            io,
            `-> IndexDigest: ${r.indexDigest}\n-> InstanceDigest: ${r.instanceDigest} (${r.platform})\n`,
          );
        }
        switch (f.format) {
          case 'nix2container':
            await writeLine(io.out, renderNix2Container(r, { json: f.json }));
            break;
          case 'manifest':
            await new Promise<void>((resolve, reject) =>
              io.out.write(r.manifest, (e) => (e ? reject(e) : resolve())),
            );
            break;
          case 'docker2nix':
            await writeLine(io.out, renderDocker2Nix(r));
            break;
          case 'json':
            await writeLine(io.out, renderJson(r, { legacySha256: f.legacySha256 }));
            break;
          default:
            await writeLine(
              io.out,
              renderDockerTools(r, {
                json: f.json,
                legacySha256: f.legacySha256,
                showPlatform: platformNeedsShowing(r, platformGiven, hostArchitecture(process.arch)),
              }),
            );
        }
      } finally {
        if (scratch) await rm(scratch, { recursive: true, force: true });
      }
    }),
  );
}
