import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { BlobCache, IndexStore } from '../../cache/index.ts';
import { parsePlatform } from '../../image/index.ts';
import {
  addToLock,
  type LockOptions,
  type PrefetchResult,
  readLock,
  removeFromLock,
  renderLockNix,
  renderLockNixLading,
  updateLock,
} from '../../pin/index.ts';
import { escapeTerminal, writeOutputFile } from '../../util/index.ts';
import { type CacheFlags, cacheRoot, withCacheOptions } from '../cache-options.ts';
import { action, type CommandContext } from '../context.ts';
import { type CliIo, writeLine } from '../io.ts';
import { onlyOnce, type RegistryFlags, withRegistryOptions } from '../options.ts';
import { formatBytes } from '../render/progress.ts';

interface LockFlags extends CacheFlags {
  file: string;
}

interface AddFlags extends LockFlags {
  name?: string;
  force?: boolean;
  platform?: string;
  pinInstance?: boolean;
  finalImageName?: string;
  finalImageTag?: string;
  hash?: boolean;
  extract?: string[];
}

function lockPath(ctx: { flags: LockFlags }, io: CliIo): string {
  return resolve(io.cwd, ctx.flags.file);
}

function withFile(cmd: Command): Command {
  return cmd.option('-f, --file <path>', 'lock file', 'lading.lock.json');
}

/** The library's lock options from the command line: its registries, cache and temp dir. */
function lockOptions(ctx: CommandContext<LockFlags & RegistryFlags>, io: CliIo): LockOptions {
  const root = cacheRoot(ctx.flags, io);
  return {
    pool: ctx.pool(),
    cache: new BlobCache(root),
    index: new IndexStore(root),
    jobs: ctx.flags.jobs,
    tmpDir: io.env.TMPDIR || tmpdir(),
  };
}

/** `--no-hash`: how much of the image was not downloaded to pin it. */
async function reportNotFetched(io: CliIo, r: PrefetchResult): Promise<void> {
  const total = [r.config, ...r.layers].reduce((n, d) => n + d.size, 0);
  const skipped = Math.max(0, total - r.fetchedBytes);
  await writeLine(
    io.err,
    `lading: --no-hash: ${skipped} bytes (${formatBytes(skipped)}) of blobs not fetched; fetchImage fetches each blob in Nix by its digest`,
  );
}

function addCommand(io: CliIo): Command {
  const cmd = new Command('add')
    .description('pin an image (by tag) and add it to the lock file')
    .argument('<image>', 'image with tag, e.g. alpine:3.20 or ghcr.io/org/app:1.4')
    .option('--name <name>', 'entry name (default: the last path component)')
    .option('--force', 'replace an entry of the same name')
    .option('--platform <os/arch[/variant]>', 'platform to pin (default linux/amd64)', onlyOnce('--platform'))
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
    );
  return withRegistryOptions(withCacheOptions(withFile(cmd))).action(
    action<AddFlags, [string]>(io, async (ctx, image) => {
      const f = ctx.flags;
      const { name, entry, prefetch } = await addToLock(
        lockPath(ctx, io),
        {
          image,
          name: f.name,
          force: f.force,
          platform: f.platform === undefined ? undefined : parsePlatform(f.platform),
          pinInstance: f.pinInstance,
          finalImageName: f.finalImageName,
          finalImageTag: f.finalImageTag,
          hash: f.hash,
          extract: f.extract,
        },
        lockOptions(ctx, io),
      );
      if (f.hash === false) await reportNotFetched(io, prefetch);
      await writeLine(
        io.out,
        `${name}: ${entry.source} ${entry.imageDigest} ${entry.dockerTools?.hash ?? '(no hash)'}`,
      );
    }),
  );
}

function updateCommand(io: CliIo): Command {
  const cmd = new Command('update')
    .description('HEAD-check every tag (or the named ones) and re-pin what changed')
    .argument('[names...]', 'entries to update');
  return withRegistryOptions(withCacheOptions(withFile(cmd))).action(
    action<LockFlags, [string[]]>(io, async (ctx, names) => {
      await updateLock(lockPath(ctx, io), names, {
        ...lockOptions(ctx, io),
        onEntry: async (u) => {
          if (u.prefetch && !u.previous.dockerTools) await reportNotFetched(io, u.prefetch);
          await writeLine(
            io.out,
            u.changed
              ? `${u.name}: ${u.previous.imageDigest} -> ${u.entry.imageDigest}`
              : `${u.name}: unchanged (${u.previous.imageDigest})`,
          );
        },
      });
    }),
  );
}

function nixCommand(io: CliIo): Command {
  const cmd = withFile(
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
  );
  return cmd.action(
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
}

function lsCommand(io: CliIo): Command {
  return withFile(new Command('ls').description('list locked images')).action(
    action<LockFlags, []>(io, async (ctx) => {
      const file = await readLock(lockPath(ctx, io));
      for (const [name, e] of Object.entries(file.images))
        await writeLine(io.out, `${name}\t${e.source}\t${e.platform}\t${e.imageDigest}`);
    }),
  );
}

function removeCommand(io: CliIo): Command {
  return withFile(new Command('remove').description('remove entries').argument('<names...>')).action(
    action<LockFlags, [string[]]>(io, async (ctx, names) => {
      await removeFromLock(lockPath(ctx, io), names);
    }),
  );
}

export function lockCommand(io: CliIo): Command {
  const lock = new Command('lock').description('keep many images pinned for Nix in lading.lock.json');
  for (const c of [addCommand(io), updateCommand(io), nixCommand(io), lsCommand(io), removeCommand(io)])
    lock.addCommand(c);
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
