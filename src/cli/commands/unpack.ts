import { lstat, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { ErrorCode, isLadingError, LadingError } from '../../errors/index.ts';
import { assertComplete, type UnpackResult, unpackRootfs } from '../../layers/index.ts';
import { pathState } from '../../transports/index.ts';
import { ioError, makeTempDir, noSpaceFor, releaseTemp } from '../../util/index.ts';
import { type CacheFlags, withCacheOptions } from '../cache-options.ts';
import { action } from '../context.ts';
import { withImage } from '../image-source.ts';
import { type CliIo, writeJson } from '../io.ts';
import { type PlatformFlags, withPlatformOptions, withRegistryOptions } from '../options.ts';
import { prepareOutput } from '../output-path.ts';

interface Flags extends PlatformFlags, CacheFlags {
  json?: boolean;
  quiet?: boolean;
  /** commander's `--no-xattrs` sets `xattrs: false`. */
  xattrs?: boolean;
}

export function unpackCommand(io: CliIo): Command {
  const cmd = new Command('unpack')
    .description(
      "unpack an image's root filesystem into a directory (whiteouts, opaque dirs, links, modes), safely",
    )
    .argument('<image>', 'docker://REF, oci:DIR[:TAG], docker-archive:FILE, dir:DIR, … or a bare reference')
    .argument('<dir>', 'destination directory: new (created when complete) or empty')
    .option('--json', 'print a summary as JSON')
    .option('--no-xattrs', 'do not apply extended attributes (they need setfattr, Debian package attr)');
  withPlatformOptions(cmd);
  withCacheOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Entries that would escape the directory (.., absolute links used as parents, hardlinks to
outside) are refused and named; the command then exits with status 7.

Examples:
  lading unpack alpine:3.20 ./rootfs
  lading unpack --platform linux/arm64 oci:./layout:1 /tmp/rootfs`,
  );
  return cmd.action(
    action<Flags, [string, string]>(io, async (ctx, image, dirArg) => {
      const dest = resolve(io.cwd, dirArg);
      // Checked before anything is downloaded: a link to nowhere cannot become the directory.
      const link = await lstat(dest).catch(() => undefined);
      if (link?.isSymbolicLink() && !(await stat(dest).catch(() => undefined)))
        throw new LadingError(
          ErrorCode.BadArgument,
          `${dest} is a symlink to a directory that does not exist: create the directory, or name a new path`,
          { path: dest },
        );
      const state = await pathState(dest);
      if (state.kind === 'other')
        throw new LadingError(
          ErrorCode.Exists,
          `${dest} is ${state.what}: unpack writes into a new or empty directory (nothing was changed)`,
          { path: dest },
        );
      // Missing parents are made; a parent that is a file is named (README, Output paths).
      await prepareOutput(io.cwd, dirArg, 'directory', dirArg);
      let entries: string[] | undefined;
      try {
        entries = await readdir(dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, dest);
      }
      // Whiteouts and opaque directories delete: never among files that were there before.
      if (entries && entries.length > 0)
        throw new LadingError(
          ErrorCode.Exists,
          `${dest} is not empty: unpack writes into a new or empty directory`,
          { path: dest },
        );
      await withImage(
        ctx,
        io,
        image,
        async (sel, _source, workDone) => {
          // A new directory is built beside its place and renamed there once complete, so a failed
          // unpack leaves nothing at DIR.
          const stage = entries ? dest : await makeTempDir(dirname(dest), basename(dest), 0o777);
          let r: UnpackResult;
          try {
            r = await unpackRootfs(sel.layers, stage, {
              onProblem: (p) => ctx.warn(p.message),
              xattrs: ctx.flags.xattrs !== false,
            });
            if (stage !== dest) {
              await rename(stage, dest);
              releaseTemp(stage);
            }
          } catch (err) {
            if (stage !== dest) await rm(stage, { recursive: true, force: true }).catch(() => {});
            const e = noSpaceFor(err, dest);
            throw isLadingError(e) ? e : ioError(e, dest);
          }
          workDone();
          const owned = Object.entries(r.owners);
          if (owned.length)
            ctx.warn(
              `owners not applied (not running as root): ${owned.length} entr${owned.length === 1 ? 'y belongs' : 'ies belong'} to other users than root, e.g. /${owned[0]![0]} (${owned[0]![1]}); --json lists them all`,
            );
          if (ctx.flags.json) await writeJson(io.out, { image: sel.instance.digest, dest, ...r });
          assertComplete(r, dest);
        },
        { what: 'unpack', whole: true },
      );
    }),
  );
}
