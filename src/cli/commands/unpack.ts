import { resolve } from 'node:path';
import { Command } from 'commander';
import { assertComplete, unpackRootfs } from '../../layers/index.ts';
import { type CacheFlags, withCacheOptions } from '../cache-options.ts';
import { action } from '../context.ts';
import { withImage } from '../image-source.ts';
import { type CliIo, writeJson } from '../io.ts';
import { type PlatformFlags, withPlatformOptions, withRegistryOptions } from '../options.ts';

interface Flags extends PlatformFlags, CacheFlags {
  json?: boolean;
  quiet?: boolean;
}

export function unpackCommand(io: CliIo): Command {
  const cmd = new Command('unpack')
    .description(
      "unpack an image's root filesystem into a directory (whiteouts, opaque dirs, links, modes), safely",
    )
    .argument('<image>', 'docker://REF, oci:DIR[:TAG], docker-archive:FILE, dir:DIR, … or a bare reference')
    .argument('<dir>', 'destination directory (created)')
    .option('--json', 'print a summary as JSON');
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
      await withImage(ctx, io, image, async (sel) => {
        const r = await unpackRootfs(sel.layers, dest, {
          onProblem: (p) => ctx.warn(p.message),
        });
        if (ctx.flags.json) await writeJson(io.out, { image: sel.instance.digest, dest, ...r });
        assertComplete(r, dest);
      });
    }),
  );
}
