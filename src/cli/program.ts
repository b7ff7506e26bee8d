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

/** The exit statuses, as `lading --help` lists them (see exit-codes.ts). */
export const EXIT_STATUS_HELP = `
Exit status:
  0  success                        4  image, tag, blob or platform not found
  1  other failure                  5  content did not match its digest or size
  2  bad usage (option, reference)  6  network or registry error after retries
  3  authentication or permission   7  unsafe content refused`;

/** The name a command is typed as: `lading cache ls`. */
function commandPath(c: Command): string {
  const names: string[] = [];
  for (let x: Command | null = c; x; x = x.parent) names.unshift(x.name());
  return names.join(' ');
}

/**
 * commander's own errors (unknown option, missing argument, bad choice) as lading prints every
 * error: `lading: error: …`, then where the usage is and what the exit status means.
 */
function outputError(c: Command) {
  return (str: string, write: (s: string) => void): void => {
    const text = str
      .replace(/^error: /, '')
      .trimEnd()
      .replace(/\n\(Did you mean (.*)\?\)$/, '\nlading: did you mean $1?');
    write(
      `lading: error: ${text}\nlading: run '${commandPath(c)} --help' for usage (exit status 2: bad usage; 'lading --help' lists every exit status)\n`,
    );
  };
}

/** The `lading` command with every subcommand. */
export function buildProgram(io: CliIo): Command {
  const program = new Command('lading')
    .description('Move container images between OCI/Docker registries, local disks and Nix.')
    .version(ladingVersion(), '-V, --version')
    .option('-q, --quiet', 'print no warnings or progress')
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
    c.configureOutput({
      writeOut: (s: string) => io.out.write(s),
      writeErr: (s: string) => io.err.write(s),
      outputError: outputError(c),
    });
    for (const sub of c.commands) configure(sub);
  };
  configure(program);
  program.addHelpText(
    'after',
    `
Examples:
  lading inspect alpine
  lading digest --platform linux/arm64 ghcr.io/org/app:1.4
  lading login ghcr.io -u me --password-stdin < token.txt
${EXIT_STATUS_HELP}`,
  );
  return program;
}
