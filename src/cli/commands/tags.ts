import { Command } from 'commander';
import { parseRepository } from '../../reference/index.ts';
import { action } from '../context.ts';
import { type CliIo, writeJson, writeLine } from '../io.ts';
import { withRegistryOptions } from '../options.ts';

export function tagsCommand(io: CliIo): Command {
  const cmd = new Command('tags')
    .description('list every tag of a repository (follows Link pagination)')
    .argument('<repository>', 'repository, e.g. alpine or ghcr.io/org/app')
    .option('--json', 'print a JSON array');
  withRegistryOptions(cmd);
  cmd.addHelpText('after', '\nExamples:\n  lading tags alpine\n  lading tags --json 127.0.0.1:5000/team/app');
  return cmd.action(
    action<{ json?: boolean }, [string]>(io, async (ctx, repository) => {
      const ref = parseRepository(repository);
      const tags = await ctx.pool().forRef(ref).listTags(ref.repository);
      if (ctx.flags.json) await writeJson(io.out, tags);
      else if (tags.length) await writeLine(io.out, tags.join('\n'));
    }),
  );
}
