import { PassThrough, Readable } from 'node:stream';
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
