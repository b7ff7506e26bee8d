import { resolveCredential } from '../auth/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { RegistryCredential } from '../registry/index.ts';
import type { CliIo } from './io.ts';
import type { RegistryFlags } from './options.ts';

/** Splits `--creds user[:password]`; a missing password is an error (no prompt in non-interactive use). */
export function parseCredsFlag(value: string): { username: string; password: string } {
  const i = value.indexOf(':');
  if (i <= 0) {
    throw new LadingError(
      ErrorCode.BadArgument,
      '--creds takes USER:PASSWORD (use lading login for a prompt)',
    );
  }
  return { username: value.slice(0, i), password: value.slice(i + 1) };
}

/** The credential lookup the registry pool uses, from the command's flags and the environment. */
export function credentialResolver(
  flags: RegistryFlags,
  io: CliIo,
  warn: (msg: string) => void,
): (registry: string, repository: string) => Promise<RegistryCredential> {
  const creds = typeof flags.creds === 'string' ? parseCredsFlag(flags.creds) : undefined;
  return async (registry, repository) => {
    const { credential, warnings } = await resolveCredential({
      host: registry,
      repository,
      options: {
        creds: creds,
        registryToken: flags.registryToken,
        noCreds: flags.noCreds,
        authFile: flags.authfile,
        credentialFile: flags.credentialFile,
      },
      env: io.env,
    });
    for (const w of warnings) warn(w);
    if (flags.debug)
      io.err.write(
        `debug: credentials for ${registry}/${repository}: ${credential.kind} (${credential.source ?? 'none'})\n`,
      );
    // Passed on as is: the sealed credential keeps redacting itself wherever it is printed.
    return credential;
  };
}
