import { CommanderError } from 'commander';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { escapeTerminal, redactAuthValues, tempsClosed } from '../util/index.ts';

export { keepBufferMemoryLow, removeHeldTemps, removeTempsThenExit } from '../util/index.ts';

import { ExitCode, exitCodeFor } from './exit-codes.ts';
import { type CliIo, processIo } from './io.ts';
import { buildProgram } from './program.ts';

const BOOL_FLAGS = new Set(['--tls-verify', '--src-tls-verify', '--dest-tls-verify']);

/**
 * The boolean flags with an optional value (`--tls-verify[=BOOL]`) take it only after `=`, as
 * skopeo's do: a bare `--tls-verify` means true and never swallows the next argument (the image).
 * `--tls-verify false` is refused rather than read as an image named "false".
 */
export function normaliseBoolFlags(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (!BOOL_FLAGS.has(a)) {
      out.push(a);
      continue;
    }
    const next = argv[i + 1];
    if (next !== undefined && /^(true|false|1|0)$/.test(next))
      throw new LadingError(
        ErrorCode.BadArgument,
        `write ${a}=${next} (with "="): a bare ${a} means true and takes no value`,
      );
    out.push(`${a}=true`);
  }
  return out;
}

/**
 * Runs the CLI; returns the exit status. Never throws. `beforeAction` runs when a command is
 * about to do its work (not for `--version`, `--help` or a usage error).
 */
export async function main(
  argv: string[],
  io: CliIo = processIo(),
  opts: { beforeAction?: () => void } = {},
): Promise<number> {
  try {
    const args = normaliseBoolFlags(argv);
    const program = await buildProgram(io, args);
    const { beforeAction } = opts;
    if (beforeAction) program.hook('preAction', () => beforeAction());
    await program.parseAsync(args, { from: 'user' });
    return ExitCode.Ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      ) {
        return ExitCode.Ok;
      }
      return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    // Interrupted (Ctrl-C): the failure is the interruption's doing; the signal handler exits.
    if (tempsClosed()) return exitCodeFor(err);
    const debug = argv.includes('--debug');
    if ((err as NodeJS.ErrnoException)?.code === 'EPIPE' && io.out.destroyed) {
      // The reader of our output went away (`lading … | head`): not a failure, nothing to say.
      return ExitCode.Ok;
    }
    if (isLadingError(err)) {
      // Messages quote what registries and images said: printed escaped (escapeTerminal).
      io.err.write(`lading: error: ${escapeTerminal(err.message)}\n`);
      if (debug && err.cause)
        io.err.write(
          `lading: cause: ${escapeTerminal(redactAuthValues(String((err.cause as Error)?.message ?? err.cause)))}\n`,
        );
    } else {
      const text = String((err as Error)?.stack ?? err);
      io.err.write(`lading: internal error: ${escapeTerminal(text, { keepNewlines: true })}\n`);
    }
    return exitCodeFor(err);
  }
}
