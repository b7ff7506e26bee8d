import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBin as requireAnyBin, run } from './bins.ts';

/**
 * NIX_CONFIG for every Nix command in the tests: no binary cache (no network), no sandbox.
 *
 * Builders: Nix 2.8 (Debian's) takes the end of the builder's log pipe for the end of the build and
 * then SIGKILLs the builder's process group to collect its status. A builder whose last program
 * closes stdout/stderr itself before it exits (coreutils' cp, chmod, ... do) is killed in that
 * window, more often under load: "builder failed due to signal 9". bash runs the last command of
 * `-c` in place (exec), so a bash builder must not end with such a program: end it with `; exit $?`
 * (the shell, which never closes them, exits last). The harness test shows the mechanism.
 */
export const NIX_CONFIG = [
  'substituters =',
  'sandbox = false',
  'experimental-features = nix-command',
  // Root without the nixbld group still works.
  'build-users-group =',
].join('\n');

/** Environment for Nix commands: {@link NIX_CONFIG}, NIX_REMOTE unset (a local store, no daemon). */
export function nixEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NIX_CONFIG, ...extra };
  delete env.NIX_REMOTE;
  return env;
}

/** Absolute path of a Nix binary; throws a clear error (never skips) when nix-bin is missing. */
export function requireBin(name: string): string {
  return requireAnyBin(name, 'nix-bin');
}

/** Runs a Nix tool and returns its trimmed stdout; rejects with stderr on failure. */
export async function nix(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  requireBin(cmd);
  return (await run(cmd, args, { env: nixEnv(opts.env), input: opts.input })).stdout.toString().trim();
}

/** Runs a Nix tool and returns raw stdout bytes. */
export async function nixBytes(cmd: string, args: string[]): Promise<Buffer> {
  requireBin(cmd);
  return (await run(cmd, args, { env: nixEnv() })).stdout;
}

/** Runs a Nix tool that may fail; returns exit code, stdout and stderr. */
export async function nixTry(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  requireBin(cmd);
  const r = await run(cmd, args, { env: nixEnv(opts.env), allowFail: true });
  return { code: r.code, stdout: r.stdout.toString().trim(), stderr: r.stderr };
}

/**
 * A private, empty Nix store (`--store <dir>`: a chroot store whose logical store dir is still
 * /nix/store). Nix initialises it on first use, so tests that add paths need neither root nor an
 * initialised /nix. Pass the returned args before the command's own arguments, and run one command
 * at a time on it: concurrent first uses race while creating the store (`db.sqlite is busy`).
 */
export async function privateStore(): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'lading-nix-store-'));
  return ['--store', root];
}

/**
 * `dockerTools.pullImage`'s hash made without lading: skopeo copies `source` (a docker:// reference
 * on a plain-HTTP registry) to a docker-archive named `nameTag`, and nix-hash hashes it flat.
 * nix32 by default; `hex: true` for nix-hash's base16.
 */
export async function skopeoArchiveHash(source: string, nameTag: string, opts: { hex?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'lading-skopeo-archive-'));
  const archive = join(dir, 'a.tar');
  await run(
    'skopeo',
    [
      '--insecure-policy',
      'copy',
      '-q',
      '--src-tls-verify=false',
      source,
      `docker-archive:${archive}:${nameTag}`,
    ],
    { env: { ...process.env, HOME: dir } },
  );
  return nix('nix-hash', ['--flat', '--type', 'sha256', ...(opts.hex ? [] : ['--base32']), archive]);
}
