import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../../src/cli/io.ts';
import { main } from '../../src/cli/main.ts';

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs the CLI in-process with captured stdout/stderr (no TTY) and the given environment. */
export async function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string | Buffer; cwd?: string } = {},
): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  const outChunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  out.on('data', (c: Buffer) => outChunks.push(c));
  err.on('data', (c: Buffer) => errChunks.push(c));
  const io: CliIo = {
    out,
    err,
    stdin: Readable.from(opts.stdin === undefined ? [] : [Buffer.from(opts.stdin)]),
    env: opts.env ?? { HOME: '/nonexistent-home', PATH: process.env.PATH },
    cwd: opts.cwd ?? process.cwd(),
    errIsTty: false,
    stdinIsTty: false,
  };
  const code = await main(args, io);
  return { code, stdout: Buffer.concat(outChunks), stderr: Buffer.concat(errChunks).toString('utf8') };
}

/** The CLI as installed: `bin/lading` run by this Node. */
export const LADING_BIN = fileURLToPath(new URL('../../bin/lading', import.meta.url));

export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `bin/lading` as a separate process, as a user's shell would. `closeStdout` closes the read
 * end of its standard output at once, as `lading … | head -0` would: every write it makes there
 * meets a closed pipe (EPIPE).
 */
export function runCliProcess(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: string; closeStdout?: boolean } = {},
): Promise<ProcessResult> {
  const child = spawn(process.execPath, [LADING_BIN, ...args], {
    cwd: opts.cwd,
    env: opts.env ?? { HOME: '/nonexistent-home', PATH: process.env.PATH },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  if (opts.closeStdout) child.stdout.destroy();
  else child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  child.stdin.end(opts.stdin ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}
