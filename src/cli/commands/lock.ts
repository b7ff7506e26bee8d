import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { BlobCache, IndexStore } from '../../cache/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { type Platform, parsePlatform } from '../../image/index.ts';
import {
  checkLockName,
  defaultLockName,
  type LockEntry,
  lockEntryFrom,
  prefetch,
  readLock,
  renderLockNix,
  renderLockNixLading,
  writeLock,
} from '../../pin/index.ts';
import { parseReference } from '../../reference/index.ts';
import { escapeTerminal, mapLimit, writeOutputFile } from '../../util/index.ts';
import { type CacheFlags, cacheRoot, withCacheOptions } from '../cache-options.ts';
import { action, type CommandContext } from '../context.ts';
import { type CliIo, writeLine } from '../io.ts';
import type { RegistryFlags } from '../options.ts';
import { withRegistryOptions } from '../options.ts';
import { recordExtract, reportNotFetched } from './lock-extract.ts';

interface LockFlags extends CacheFlags {
  file: string;
}

function lockPath(ctx: { flags: LockFlags }, io: CliIo): string {
  return resolve(io.cwd, ctx.flags.file);
}

function withFile(cmd: Command): Command {
  return cmd.option('-f, --file <path>', 'lock file', 'lading.lock.json');
}

async function prefetchEntry(
  ctx: CommandContext<LockFlags & RegistryFlags>,
  io: CliIo,
  input: {
    imageName: string;
    tag: string;
    platform: Platform;
    /** Asked for with --platform: a single-platform image of another platform is refused. */
    platformExplicit: boolean;
    pinInstance: boolean;
    finalImageName?: string;
    finalImageTag?: string;
    /** `--no-hash`: manifests only, no layer fetched (for lading's fetchImage, which needs no hash). */
    noHash?: boolean;
    /** `--extract PATH`: record the layer deciding each path (only the layers above it are read). */
    extract?: string[];
  },
): Promise<LockEntry> {
  const root = cacheRoot(ctx.flags, io);
  const r = await prefetch({
    pool: ctx.pool(),
    imageName: input.imageName,
    tag: input.tag,
    platform: input.platform,
    platformExplicit: input.platformExplicit,
    pinInstance: input.pinInstance,
    finalImageName: input.finalImageName,
    finalImageTag: input.finalImageTag,
    cache: new BlobCache(root),
    index: new IndexStore(root),
    jobs: ctx.flags.jobs,
    ...(input.noHash ? { want: { dockerTools: false, nix2container: false } } : {}),
  });
  const entry = lockEntryFrom(r, input.tag, input.pinInstance);
  if (input.extract?.length) entry.extract = await recordExtract(ctx, r, input.extract, root);
  if (input.noHash) await reportNotFetched(io, r);
  return entry;
}

export function lockCommand(io: CliIo): Command {
  const lock = new Command('lock').description('keep many images pinned for Nix in lading.lock.json');
  const add = withRegistryOptions(
    withCacheOptions(
      withFile(
        new Command('add')
          .description('pin an image (by tag) and add it to the lock file')
          .argument('<image>', 'image with tag, e.g. alpine:3.20 or ghcr.io/org/app:1.4')
          .option('--name <name>', 'entry name (default: the last path component)')
          .option('--force', 'replace an entry of the same name')
          .option('--platform <os/arch[/variant]>', 'platform to pin (default linux/amd64)')
          .option('--pin-instance', "pin the platform's manifest digest instead of the index digest")
          .option('--final-image-name <name>', 'name written into the archive')
          .option('--final-image-tag <tag>', 'tag written into the archive')
          .option(
            '--no-hash',
            "fetch no layer: no dockerTools/nix2container hashes (lading's fetchImage needs none)",
          )
          .option(
            '--extract <path>',
            "record which layer decides PATH (lading's extractFile then fetches only the layers from it up); repeatable",
            (v: string, prev: string[]) => [...prev, v],
            [] as string[],
          ),
      ),
    ),
  ).action(
    action<
      LockFlags & {
        name?: string;
        force?: boolean;
        platform?: string;
        pinInstance?: boolean;
        finalImageName?: string;
        finalImageTag?: string;
        hash?: boolean;
        extract?: string[];
      },
      [string]
    >(io, async (ctx, image) => {
      const ref = parseReference(image);
      if (ref.digest)
        throw new LadingError(ErrorCode.BadArgument, 'lock add tracks a tag; give IMAGE:TAG, not a digest');
      const name = ctx.flags.name ?? defaultLockName(ref.repository);
      checkLockName(name);
      const at = image.lastIndexOf(':');
      const imageName = ref.tag && at > image.lastIndexOf('/') ? image.slice(0, at) : image;
      const file = await readLock(lockPath(ctx, io));
      // Checked before any download: another image under the same name is never replaced silently.
      const existing = file.images[name];
      if (existing && !ctx.flags.force)
        throw new LadingError(
          ErrorCode.Exists,
          `${lockPath(ctx, io)} already has an entry ${JSON.stringify(name)} (${existing.source}); choose another with --name, or replace it with --force`,
          { path: lockPath(ctx, io) },
        );
      const entry = await prefetchEntry(ctx, io, {
        imageName,
        tag: ref.tag ?? 'latest',
        platform: parsePlatform(ctx.flags.platform ?? 'linux/amd64'),
        platformExplicit: ctx.flags.platform !== undefined,
        pinInstance: ctx.flags.pinInstance === true,
        finalImageName: ctx.flags.finalImageName,
        finalImageTag: ctx.flags.finalImageTag,
        noHash: ctx.flags.hash === false,
        extract: ctx.flags.extract,
      });
      file.images[name] = entry;
      await writeLock(lockPath(ctx, io), file);
      await writeLine(
        io.out,
        `${name}: ${entry.source} ${entry.imageDigest} ${entry.dockerTools?.hash ?? '(no hash)'}`,
      );
    }),
  );
  const update = withRegistryOptions(
    withCacheOptions(
      withFile(
        new Command('update')
          .description('HEAD-check every tag (or the named ones) and re-pin what changed')
          .argument('[names...]', 'entries to update'),
      ),
    ),
  ).action(
    action<LockFlags, [string[]]>(io, async (ctx, names) => {
      const file = await readLock(lockPath(ctx, io));
      const targets = names.length ? names : Object.keys(file.images).sort();
      const entries = targets.map((name) => {
        const e = file.images[name];
        if (!e)
          throw new LadingError(
            ErrorCode.NotFound,
            `no entry ${JSON.stringify(name)} in ${lockPath(ctx, io)}`,
          );
        return e;
      });
      // Every tag is HEAD-checked at once (a few at a time); only what moved is fetched again.
      const heads = await mapLimit(entries, 8, async (e) => {
        const ref = parseReference(e.source);
        const head = await ctx.pool().forRef(ref).headManifest(ref);
        if (!head)
          throw new LadingError(ErrorCode.NotFound, `${e.source} no longer exists`, { ref: e.source });
        return head;
      });
      let changed = 0;
      for (const [i, name] of targets.entries()) {
        const e = entries[i]!;
        const head = heads[i]!;
        const top = e.indexDigest ?? e.instanceDigest;
        if (head.digest && head.digest === top) {
          await writeLine(io.out, `${name}: unchanged (${e.imageDigest})`);
          continue;
        }
        const next = await prefetchEntry(ctx, io, {
          imageName: e.imageName,
          tag: e.tag,
          platform: parsePlatform(e.platform),
          // The entry's platform may be the default: re-pinned as it was added.
          platformExplicit: false,
          pinInstance: e.pinInstance,
          finalImageName: e.finalImageName,
          finalImageTag: e.finalImageTag,
          noHash: e.dockerTools === undefined,
          extract: Object.keys(e.extract ?? {}),
        });
        if (next.imageDigest === e.imageDigest && next.dockerTools?.hash === e.dockerTools?.hash) {
          await writeLine(io.out, `${name}: unchanged (${e.imageDigest})`);
          continue;
        }
        file.images[name] = next;
        changed++;
        await writeLine(io.out, `${name}: ${e.imageDigest} -> ${next.imageDigest}`);
      }
      if (changed) await writeLock(lockPath(ctx, io), file);
    }),
  );
  const nix = withFile(
    new Command('nix')
      .description(
        'write a Nix file exposing every locked image through dockerTools.pullImage and nix2container',
      )
      .option('-o, --output <file>', 'write to FILE instead of stdout')
      .option(
        '--legacy-sha256',
        'write sha256 = "<nix32>" instead of hash: pullImage of nixpkgs 24.11 and older takes no hash',
      )
      .addOption(
        new Option(
          '--target <target>',
          "whose functions: nixpkgs' and nix2container's, or lading's nix/lib.nix",
        )
          .choices(['nixpkgs', 'lading'])
          .default('nixpkgs'),
      ),
  ).action(
    action<LockFlags & { output?: string; legacySha256?: boolean; target?: string }, []>(io, async (ctx) => {
      const lock = await readLock(lockPath(ctx, io));
      const text =
        ctx.flags.target === 'lading'
          ? renderLockNixLading(lock)
          : renderLockNix(lock, { legacySha256: ctx.flags.legacySha256 });
      if (ctx.flags.output) await writeOutputFile(resolve(io.cwd, ctx.flags.output), text);
      else io.out.write(escapeTerminal(text, { keepNewlines: true }));
    }),
  );
  const ls = withFile(new Command('ls').description('list locked images')).action(
    action<LockFlags, []>(io, async (ctx) => {
      const file = await readLock(lockPath(ctx, io));
      for (const [name, e] of Object.entries(file.images))
        await writeLine(io.out, `${name}\t${e.source}\t${e.platform}\t${e.imageDigest}`);
    }),
  );
  const rm = withFile(new Command('remove').description('remove entries').argument('<names...>')).action(
    action<LockFlags, [string[]]>(io, async (ctx, names) => {
      const file = await readLock(lockPath(ctx, io));
      for (const n of names) {
        if (!file.images[n])
          throw new LadingError(ErrorCode.NotFound, `no entry ${JSON.stringify(n)} in ${lockPath(ctx, io)}`);
        delete file.images[n];
      }
      await writeLock(lockPath(ctx, io), file);
    }),
  );
  for (const c of [add, update, nix, ls, rm]) lock.addCommand(c);
  lock.addHelpText(
    'after',
    `
Examples:
  lading lock add alpine:3.20
  lading lock add --name app --platform linux/arm64 ghcr.io/org/app:1.4
  lading lock update
  lading lock nix -o images.nix
  lading lock add --no-hash --extract /usr/bin/tool ghcr.io/org/agent:1.4
  lading lock nix --target lading -o images.nix   # for lading's nix/lib.nix (fetchImage)`,
  );
  return lock;
}
