import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Command } from 'commander';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { normaliseArch, type Platform, parsePlatform } from '../../image/index.ts';
import type { RegistryPool } from '../../registry/index.ts';
import { action } from '../context.ts';
import type { CliIo } from '../io.ts';
import { registryPool } from '../options.ts';
import { NIX_BUILDERS } from './nix-builder-kinds.ts';

/**
 * What a builder of nix/lib.nix gets: the derivation's attributes, which Nix passes as environment
 * variables (strings; `true` is "1", `false` is ""), and a registry pool built from them alone.
 */
export interface NixBuildEnv {
  io: CliIo;
  /** A required attribute (a clear error naming it when it is missing or empty). */
  need(name: string): string;
  /** An optional attribute (undefined when absent or empty). */
  opt(name: string): string | undefined;
  /** `$out`. */
  out: string;
  /** The build's temporary directory (`$TMPDIR`, which Nix points into the build directory). */
  tmp: string;
  /** The platform from `os`, `arch` and `variant`. */
  platform(): Platform;
  /** A registry pool: credentials only from `authFile`, TLS from `tlsVerify`. */
  pool(): Promise<RegistryPool>;
  /** A line for the build log. */
  log(line: string): void;
}

/**
 * Whether an auth file is JSON (containers auth.json, docker config.json) or hocker's
 * `KEY=VALUE` credential file. Only the first non-blank byte is looked at, and nothing of the
 * file ever reaches a message.
 */
async function authFileKind(path: string): Promise<'json' | 'hocker'> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new LadingError(
      ErrorCode.AuthFile,
      `cannot read the authFile ${path} (${code}); inside a Nix build it must be visible to the builder: see "Using lading from Nix" in the README (extra-sandbox-paths, and readable by the build users with the daemon)`,
      { path },
    );
  }
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const first = buf.subarray(0, bytesRead).toString('latin1').trimStart()[0];
    return first === '{' ? 'json' : 'hocker';
  } finally {
    await fh.close();
  }
}

function buildEnv(io: CliIo): NixBuildEnv {
  const env = io.env;
  const opt = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const need = (name: string): string => {
    const v = opt(name);
    if (v === undefined)
      throw new LadingError(
        ErrorCode.BadArgument,
        `the Nix builder needs the derivation attribute ${name} (run it from nix/lib.nix)`,
      );
    return v;
  };
  return {
    io,
    need,
    opt,
    out: need('out'),
    tmp: opt('TMPDIR') ?? tmpdir(),
    platform: () => {
      const variant = opt('variant');
      return parsePlatform(
        `${opt('os') ?? 'linux'}/${normaliseArch(opt('arch') ?? 'amd64')}${variant ? `/${variant}` : ''}`,
      );
    },
    pool: async () => {
      const authFile = opt('authFile');
      const kind = authFile ? await authFileKind(authFile) : undefined;
      // Nothing from the build's environment: HOME is /homeless-shelter, and only authFile counts.
      const quietIo: CliIo = { ...io, env: { HOME: '/homeless-shelter' } };
      return registryPool(
        {
          authfile: kind === 'json' ? authFile : undefined,
          credentialFile: kind === 'hocker' ? authFile : undefined,
          noCreds: authFile === undefined,
          // Nix gives "1" for true and "" for false; an absent attribute keeps TLS on.
          tlsVerify: env.tlsVerify === undefined ? true : env.tlsVerify === '1' || env.tlsVerify === 'true',
        },
        quietIo,
        (msg) => io.err.write(`lading: warning: ${msg}\n`),
      );
    },
    log: (line) => io.err.write(`${line}\n`),
  };
}

/**
 * `lading nix-builder KIND`: the builders of nix/lib.nix (hidden from --help). Nix runs them with
 * the derivation's attributes in the environment; they write `$out` and nothing else.
 */
export function nixBuilderCommand(io: CliIo): Command {
  return new Command('nix-builder')
    .description('build step of nix/lib.nix (parameters from the environment Nix passes)')
    .argument('<kind>', `one of: ${Object.keys(NIX_BUILDERS).join(', ')}`)
    .action(
      action<object, [string]>(io, async (_ctx, kind) => {
        const builder = NIX_BUILDERS[kind];
        if (!builder)
          throw new LadingError(
            ErrorCode.BadArgument,
            `unknown Nix builder ${JSON.stringify(kind)}: one of ${Object.keys(NIX_BUILDERS).join(', ')}`,
          );
        const b = buildEnv(io);
        let pool: RegistryPool | undefined;
        try {
          await builder({
            ...b,
            pool: async () => {
              pool ??= await b.pool();
              return pool;
            },
          });
        } finally {
          await pool?.close();
        }
      }),
    );
}
