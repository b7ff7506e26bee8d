import type { Writable } from 'node:stream';
import type { ImageLocation } from '../transports/index.ts';
import { escapeTerminal, removeHeldTemps } from '../util/index.ts';

/** Writes diagnostic text to standard error with control characters escaped (see writeLine). */
export function writeErr(io: CliIo, text: string): void {
  io.err.write(escapeTerminal(text, { keepNewlines: true }));
}

/** Where a command writes: results to `out`, diagnostics to `err`, input from `stdin`. */
export interface CliIo {
  out: Writable;
  err: Writable;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Whether stderr is a terminal (progress bars) . */
  errIsTty: boolean;
  /** The width of that terminal now (it can change while a command runs). */
  errColumns?: () => number | undefined;
  stdinIsTty: boolean;
  /** Runs `fn` (a prompt) with the command's live progress display off the screen. */
  holdProgress?: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * The reader of standard output went away (`lading … | head -1`): stop at once and quietly, with
 * status 0, as a program killed by SIGPIPE would stop (Node ignores SIGPIPE, so without this the
 * pending write's `error` event would end the process with a stack trace). Temp files in progress
 * are removed first. Any other write error is left to crash as before: it is a bug.
 */
function onStdoutError(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPIPE') throw err;
  removeHeldTemps();
  process.exit(0);
}

export function processIo(): CliIo {
  if (!process.stdout.listeners('error').includes(onStdoutError)) process.stdout.on('error', onStdoutError);
  return {
    out: process.stdout,
    err: process.stderr,
    // Made when first read: process.stdin builds a stream (and loads its modules) that most
    // commands never read.
    get stdin() {
      return process.stdin;
    },
    env: process.env,
    cwd: process.cwd(),
    errIsTty: process.stderr.isTTY === true,
    errColumns: () => process.stderr.columns,
    get stdinIsTty() {
      return process.stdin.isTTY === true;
    },
  };
}

/**
 * Writes a line (or several) and waits until it is flushed (matters before exit and for pipes).
 * Control characters are escaped (escapeTerminal): results quote names and values from images
 * and registries. JSON stays valid and decodes to the same values.
 */
export function writeLine(stream: Writable, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(`${escapeTerminal(line, { keepNewlines: true })}\n`, (err) =>
      err ? reject(err) : resolve(),
    );
  });
}

export function writeJson(stream: Writable, value: unknown): Promise<void> {
  return writeLine(stream, JSON.stringify(value, null, 2));
}

/**
 * Writes a command's result (a digest, --json) to standard output, unless the destination itself
 * streams there (`docker-archive:-`, `oci-archive:-`) and stdout must stay clean for the pipe:
 * then to standard error, and not at all with --quiet.
 */
export async function writeResult(
  dst: ImageLocation,
  io: CliIo,
  quiet: boolean | undefined,
  text: string,
): Promise<void> {
  const streamed =
    (dst.transport === 'docker-archive' || dst.transport === 'oci-archive') && dst.path === '-';
  if (!streamed) await writeLine(io.out, text);
  else if (!quiet) await writeLine(io.err, text);
}
