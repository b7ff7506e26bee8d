import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { assertComplete, extractPaths } from '../../layers/index.ts';
import { outputTarget } from '../../util/index.ts';
import { type CacheFlags, withCacheOptions } from '../cache-options.ts';
import { action } from '../context.ts';
import { withImage } from '../image-source.ts';
import { type CliIo, writeErr, writeJson } from '../io.ts';
import { type PlatformFlags, withPlatformOptions, withRegistryOptions } from '../options.ts';
import { prepareOutput } from '../output-path.ts';
import { formatBytes } from '../render/progress.ts';

interface Flags extends PlatformFlags, CacheFlags {
  output?: string;
  json?: boolean;
  quiet?: boolean;
}

export function extractCommand(io: CliIo): Command {
  const cmd = new Command('extract')
    .description('copy files or directories out of an image, downloading only the layers that decide them')
    .argument('<image>', 'docker://REF, oci:DIR[:TAG], docker-archive:FILE, … or a bare reference')
    .argument('<paths...>', 'paths inside the image, e.g. /usr/bin/tool')
    .option(
      '-o, --output <dest>',
      'a directory (default: the current one), or a file name when extracting one file',
    )
    .option('--json', 'print what was extracted and how much was downloaded, as JSON');
  withPlatformOptions(cmd);
  withCacheOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Layers are read from the top; as soon as every path is decided the rest is never fetched.
Symlinks inside the image are followed, so /usr/bin/foo -> ../lib/foo/foo gives the real file,
with its mode (executables stay executable).

Examples:
  lading extract ghcr.io/org/agent:1.4 /usr/bin/onboarding-agent -o ./onboarding-agent
  lading extract alpine:3.20 /etc/os-release /etc/apk -o ./out`,
  );
  return cmd.action(
    action<Flags, [string, string[]]>(io, async (ctx, image, paths) => {
      // One path and -o not an existing directory: -o is the file's name; else a directory.
      const named = resolve(io.cwd, ctx.flags.output ?? '.');
      const isDir = await stat(named).then(
        (s) => s.isDirectory(),
        () => false,
      );
      const dest = await prepareOutput(
        io.cwd,
        ctx.flags.output ?? '.',
        paths.length === 1 && !isDir ? 'file' : 'directory',
        `-o ${ctx.flags.output ?? '.'}`,
      );
      // One path to a destination that is not a directory: judged before the image is opened.
      if (paths.length === 1 && !isDir) await outputTarget(dest);
      await withImage(
        ctx,
        io,
        image,
        async (sel, source, workDone) => {
          const r = await extractPaths(sel.layers, paths, { dest, onProblem: (p) => ctx.warn(p.message) });
          workDone();
          const fetched = source.fetchedBytes ?? r.bytesRead;
          const summary = {
            image: sel.instance.digest,
            results: r.results,
            problems: r.problems,
            layersOpened: r.layersOpened,
            layers: r.layerCount,
            bytesRead: r.bytesRead,
            bytesFetched: fetched,
            imageBytes: sel.totalSize,
          };
          if (ctx.flags.json) await writeJson(io.out, summary);
          if (!ctx.flags.quiet) {
            for (const x of r.results)
              writeErr(
                io,
                `${x.path}${x.resolvedPath !== x.path.replace(/^\/+/, '') ? ` (-> /${x.resolvedPath})` : ''} -> ${x.dest}\n`,
              );
            writeErr(
              io,
              `read ${r.layersOpened} of ${r.layerCount} layers; fetched ${formatBytes(fetched)} of the image's ${formatBytes(sel.totalSize)}\n`,
            );
          }
          assertComplete(r, dest);
        },
        { what: 'extract', whole: false },
      );
    }),
  );
}
