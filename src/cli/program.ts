import { Command } from 'commander';
import { escapeTerminal } from '../util/index.ts';
import { commandsNeeded, loadCommands } from './command-loader.ts';
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
    // commander quotes the arguments it could not take: control characters from the command line
    // are shown escaped, as every other message shows them.
    const bare = escapeTerminal(str.replace(/^error: /, '').trimEnd(), { keepNewlines: true });
    // A "command" that starts with "--" (`lading -- --help`) is compared by commander with the
    // command names cut by two letters, as if they were options: `help` became "did you mean --lp?".
    const dashed = /^unknown command '-/.test(bare);
    const text = bare.replace(/\n\(Did you mean (.*)\?\)$/, dashed ? '' : '\nlading: did you mean $1?');
    write(
      `lading: error: ${text}\nlading: run '${commandPath(c)} --help' for usage (exit status 2: bad usage; 'lading --help' lists every exit status)\n`,
    );
  };
}

/**
 * The `lading` command with the subcommands `argv` needs (see commandsNeeded): every one for the
 * help, only the one that runs otherwise, none for `--version`.
 */
export async function buildProgram(io: CliIo, argv: readonly string[]): Promise<Command> {
  const program = new Command('lading')
    .description('Move container images between OCI/Docker registries, local disks and Nix.')
    .version(ladingVersion(), '-V, --version')
    .option('-q, --quiet', 'print no warnings or progress')
    .exitOverride();
  for (const { command, hidden } of await loadCommands(io, commandsNeeded(argv))) {
    program.addCommand(command, { hidden });
  }
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
