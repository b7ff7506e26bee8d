import { pipeline } from 'node:stream/promises';
import { Command } from 'commander';
import { isLadingError } from '../../errors/index.ts';
import { assertComplete, exportRootfs } from '../../layers/index.ts';
import { outputTarget, writeOutputFile } from '../../util/index.ts';
import { type CacheFlags, withCacheOptions } from '../cache-options.ts';
import { action } from '../context.ts';
import { withImage } from '../image-source.ts';
import type { CliIo } from '../io.ts';
import { type PlatformFlags, withPlatformOptions, withRegistryOptions } from '../options.ts';
import { prepareOutput } from '../output-path.ts';

interface Flags extends PlatformFlags, CacheFlags {
  output?: string;
}

export function exportCommand(io: CliIo): Command {
  const cmd = new Command('export')
    .description(
      "write an image's flattened root filesystem as one deterministic tar (as undocker or crane export)",
    )
    .argument('<image>', 'docker://REF, oci:DIR[:TAG], docker-archive:FILE, … or a bare reference')
    .option('-o, --output <file>', 'write to FILE (atomically) instead of stdout; - is stdout');
  withPlatformOptions(cmd);
  withCacheOptions(cmd);
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    '\nExamples:\n  lading export alpine:3.20 -o rootfs.tar\n  lading export docker-archive:image.tar | tar -t',
  );
  return cmd.action(
    action<Flags, [string]>(io, async (ctx, image) => {
      const out =
        ctx.flags.output && ctx.flags.output !== '-'
          ? await prepareOutput(io.cwd, ctx.flags.output, 'file', `-o ${ctx.flags.output}`)
          : undefined;
      // Judged before the image is opened: a dangling link or a directory fails at once.
      if (out) await outputTarget(out);
      await withImage(
        ctx,
        io,
        image,
        async (sel, _source, workDone) => {
          const { stream, done } = await exportRootfs(sel.layers, { onProblem: (p) => ctx.warn(p.message) });
          // Both settle before anything is reported: the temp file beside -o is gone by then. A
          // file with refused entries (exit 7) never takes its place.
          const [written, result] = await Promise.allSettled([
            out
              ? writeOutputFile(out, stream, { beforeCommit: async () => assertComplete(await done, out) })
              : pipeline(stream, io.out, { end: false }),
            done,
          ]);
          workDone();
          // A reader that went away (`| head`) is the cause of whatever the exporter says next.
          if (written.status === 'rejected' && (written.reason as NodeJS.ErrnoException)?.code === 'EPIPE')
            throw written.reason;
          // The exporter's own failure (a digest mismatch) names the cause; a failed write (no space)
          // makes the exporter fail with a bare stream error, so the write's error goes first then.
          if (result.status === 'rejected') {
            if (written.status === 'rejected' && !isLadingError(result.reason)) throw written.reason;
            throw result.reason;
          }
          if (written.status === 'rejected') throw written.reason;
          assertComplete(result.value, out ?? 'stdout');
        },
        { what: 'export', whole: true },
      );
    }),
  );
}
