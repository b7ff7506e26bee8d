import { CommanderError } from 'commander';
import { isLadingError } from '../errors/index.ts';
import { escapeTerminal, redactAuthValues, tempsClosed } from '../util/index.ts';

export { keepBufferMemoryLow, removeHeldTemps, removeTempsThenExit } from '../util/index.ts';

import { ExitCode, exitCodeFor } from './exit-codes.ts';
import { type CliIo, processIo } from './io.ts';
import { buildProgram } from './program.ts';

/** Runs the CLI; returns the exit status. Never throws. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
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
