import { resolveCredential } from '../auth/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { RegistryCredential } from '../registry/index.ts';
import type { CliIo } from './io.ts';
import type { RegistryFlags } from './options.ts';
import { promptHidden } from './prompt.ts';

/** Splits `--creds user[:password]`; without `:` the password is undefined (asked for on a terminal). */
export function parseCredsFlag(value: string): { username: string; password: string | undefined } {
  const i = value.indexOf(':');
  if (i === 0 || value === '')
    throw new LadingError(
      ErrorCode.BadArgument,
      '--creds takes USER:PASSWORD, or USER to be asked for the password',
    );
  if (i === -1) return { username: value, password: undefined };
  return { username: value.slice(0, i), password: value.slice(i + 1) };
}

/** The credential lookup the registry pool uses, from the command's flags and the environment. */
export function credentialResolver(
  flags: RegistryFlags,
  io: CliIo,
  warn: (msg: string) => void,
): (registry: string, repository: string) => Promise<RegistryCredential> {
  const given = typeof flags.creds === 'string' ? parseCredsFlag(flags.creds) : undefined;
  if (given && given.password === undefined && !io.stdinIsTty)
    throw new LadingError(
      ErrorCode.BadArgument,
      `--creds ${given.username} has no password, and there is no terminal to ask for it on: give --creds USER:PASSWORD, or store it once with lading login REGISTRY -u ${given.username} --password-stdin`,
    );
  // Asked once, on the first registry that needs it (not echoed), and used for every request.
  let asked: Promise<string> | undefined;
  return async (registry, repository) => {
    let creds: { username: string; password: string } | undefined;
    if (given) {
      if (given.password === undefined && !asked) {
        const ask = () => promptHidden(io, `Password for ${given.username} at ${registry}: `);
        asked = io.holdProgress ? io.holdProgress(ask) : ask();
      }
      const password = given.password ?? (await asked!);
      creds = { username: given.username, password };
    }
    const { credential, warnings } = await resolveCredential({
      host: registry,
      repository,
      options: {
        creds,
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
