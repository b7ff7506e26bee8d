import { pipeline } from 'node:stream/promises';
import { Command } from 'commander';
import { parseDigest } from '../../digest/index.ts';
import { writeOutputFile } from '../../util/index.ts';
import { action } from '../context.ts';
import type { CliIo } from '../io.ts';
import { withRegistryOptions } from '../options.ts';
import { prepareOutput } from '../output-path.ts';

export function blobCommand(io: CliIo): Command {
  const cmd = new Command('blob')
    .description('download one blob, verified against its digest')
    .argument('<image>', 'image reference naming the repository')
    .argument('<digest>', 'blob digest, sha256:…')
    .option(
      '-o, --output <file>',
      'write to FILE (atomically; nothing is left on failure) instead of stdout',
    );
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    '\nExamples:\n  lading blob alpine sha256:… -o layer.tar.gz\n  lading blob ghcr.io/org/app sha256:… | tar -tz',
  );
  return cmd.action(
    action<{ output?: string }, [string, string]>(io, async (ctx, image, digestArg) => {
      const ref = ctx.ref(image);
      const digest = parseDigest(digestArg, 'blob digest');
      const out = ctx.flags.output
        ? await prepareOutput(io.cwd, ctx.flags.output, 'file', `-o ${ctx.flags.output}`)
        : undefined;
      const stream = await ctx.pool().forRef(ref).openBlob(ref.repository, digest);
      if (out) await writeOutputFile(out, stream);
      else await pipeline(stream, io.out, { end: false });
    }),
  );
}
