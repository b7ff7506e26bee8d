import { Command } from 'commander';
import { blobCommand } from './commands/blob.ts';
import { buildCommand } from './commands/build.ts';
import { cacheCommand } from './commands/cache.ts';
import { copyCommand } from './commands/copy.ts';
import { digestCommand } from './commands/digest.ts';
import { exportCommand } from './commands/export.ts';
import { extractCommand } from './commands/extract.ts';
import { indexCommand } from './commands/index-create.ts';
import { inspectCommand } from './commands/inspect.ts';
import { lockCommand } from './commands/lock.ts';
import { loginCommand, logoutCommand } from './commands/login.ts';
import { nixBuilderCommand } from './commands/nix-builder.ts';
import { prefetchCommand } from './commands/prefetch.ts';
import { tagsCommand } from './commands/tags.ts';
import { unpackCommand } from './commands/unpack.ts';
import type { CliIo } from './io.ts';
import { ladingVersion } from './version.ts';

/** The `lading` command with every subcommand. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('lading')
    .description('Move container images between OCI/Docker registries, local disks and Nix.')
    .version(ladingVersion(), '-V, --version')
    .option('-q, --quiet', 'print no warnings or progress')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.out.write(s),
      writeErr: (s) => io.err.write(s),
    })
    .exitOverride();
  for (const cmd of [
    inspectCommand(io),
    digestCommand(io),
    tagsCommand(io),
    blobCommand(io),
    loginCommand(io),
    logoutCommand(io),
    prefetchCommand(io),
    lockCommand(io),
    copyCommand(io, 'copy'),
    copyCommand(io, 'pull'),
    buildCommand(io),
    indexCommand(io),
    unpackCommand(io),
    extractCommand(io),
    exportCommand(io),
    cacheCommand(io),
  ]) {
    program.addCommand(cmd);
  }
  // The build steps of nix/lib.nix: run by Nix, not by people.
  program.addCommand(nixBuilderCommand(io), { hidden: true });
  // Nested commands (lock add, cache ls) too: report errors, never exit the process.
  const configure = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeOut: (s: string) => io.out.write(s), writeErr: (s: string) => io.err.write(s) });
    for (const sub of c.commands) configure(sub);
  };
  for (const c of program.commands) configure(c);
  program.addHelpText(
    'after',
    `
Examples:
  lading inspect alpine
  lading digest --platform linux/arm64 ghcr.io/org/app:1.4
  lading login ghcr.io -u me --password-stdin < token.txt`,
  );
  return program;
}
