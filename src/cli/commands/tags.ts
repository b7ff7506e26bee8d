import { Command } from 'commander';
import { parseRepository } from '../../reference/index.ts';
import { action } from '../context.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import { withRegistryOptions } from '../options.ts';

export function tagsCommand(io: CliIo): Command {
  const cmd = new Command('tags')
    .description('list every tag of a repository (follows Link pagination)')
    .argument('<repository>', 'repository, e.g. alpine, ghcr.io/org/app or docker://ghcr.io/org/app')
    .option('--json', 'print a JSON array');
  withRegistryOptions(cmd);
  cmd.addHelpText('after', '\nExamples:\n  lading tags alpine\n  lading tags --json 127.0.0.1:5000/team/app');
  return cmd.action(
    action<{ json?: boolean }, [string]>(io, async (ctx, repository) => {
      // `docker://REPO` as skopeo users type it, as blob and digest take it.
      const ref = parseRepository(repository.startsWith('docker://') ? repository.slice(9) : repository);
      const tags = await ctx.pool().forRef(ref).listTags(ref.repository);
      if (ctx.flags.json) await writeJson(io.out, tags);
      else if (tags.length) await writeLine(io.out, tags.join('\n'));
    }),
  );
}
