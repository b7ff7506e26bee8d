import { Command } from 'commander';
import { login, logout } from '../../auth/index.ts';
import { readAtMost } from '../../digest/index.ts';
import { ErrorCode, LadingError } from '../../errors/index.ts';
import { normaliseRegistryHost } from '../../reference/index.ts';
import { defaultPerHostCertDirs, RegistryClient } from '../../registry/index.ts';
import { escapeTerminal } from '../../util/index.ts';
import { action } from '../context.ts';
import { type CliIo, writeLine } from '../io.ts';
import { withRegistryOptions } from '../options.ts';
import { prompt, promptHidden } from '../prompt.ts';

interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  authfile?: string;
}

export function loginCommand(io: CliIo): Command {
  const cmd = new Command('login')
    .description('check credentials against a registry and store them in the containers auth.json')
    .argument('<registry>', 'registry host, e.g. ghcr.io or 127.0.0.1:5000')
    .option('-u, --username <user>', 'user name (prompted if omitted)')
    .option('-p, --password <password>', 'password (visible in the process list: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input');
  withRegistryOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Stores the entry as podman does: $XDG_RUNTIME_DIR/containers/auth.json, else
\${XDG_CONFIG_HOME:-~/.config}/containers/auth.json (or --authfile / REGISTRY_AUTH_FILE).

Examples:
  echo "$TOKEN" | lading login ghcr.io -u me --password-stdin
  lading login 127.0.0.1:5000 -u admin`,
  );
  return cmd.action(
    action<LoginFlags, [string]>(io, async (ctx, registryArg) => {
      const host = normaliseRegistryHost(registryArg);
      const username = ctx.flags.username ?? (io.stdinIsTty ? await prompt(io, 'Username: ') : undefined);
      if (!username)
        throw new LadingError(ErrorCode.BadArgument, 'login needs --username (no terminal to prompt on)');
      let password = ctx.flags.password;
      if (ctx.flags.passwordStdin) {
        password = (await readAtMost(io.stdin as AsyncIterable<Buffer>, 64 * 1024, 'password from stdin'))
          .toString('utf8')
          .replace(/\r?\n$/, '');
      } else if (password === undefined) {
        if (!io.stdinIsTty)
          throw new LadingError(
            ErrorCode.BadArgument,
            'login needs --password-stdin (no terminal to prompt on)',
          );
        password = await promptHidden(io, 'Password: ');
      }
      if (!password) throw new LadingError(ErrorCode.BadArgument, 'empty password');
      const secret = password;
      const client = new RegistryClient({
        registry: host,
        apiHost: host === 'docker.io' ? 'registry-1.docker.io' : host,
        tlsVerify: ctx.flags.tlsVerify !== false,
        certDir: ctx.flags.certDir,
        perHostCertDirs: defaultPerHostCertDirs(io.env.HOME || undefined),
        retry: { times: ctx.flags.retryTimes ?? 2, delayMs: ctx.flags.retryDelay ?? 1000 },
        credentials: async () => ({ kind: 'basic', username, password: secret, source: 'login' }),
        onDebug: ctx.flags.debug ? (l) => io.err.write(`debug: ${escapeTerminal(l)}\n`) : undefined,
      });
      try {
        await client.checkCredentials();
      } finally {
        await client.close();
      }
      const file = await login({
        host,
        username,
        password: secret,
        authFile: ctx.flags.authfile,
        env: io.env,
      });
      await writeLine(io.out, `Login Succeeded (stored in ${file})`);
    }),
  );
}

export function logoutCommand(io: CliIo): Command {
  const cmd = new Command('logout')
    .description('remove stored credentials for a registry from the containers auth.json')
    .argument('[registry]', 'registry host')
    .option('-a, --all', 'remove every stored credential')
    .option('--authfile <path>', 'auth file to edit (default as for login)');
  cmd.addHelpText('after', '\nExamples:\n  lading logout ghcr.io\n  lading logout --all');
  return cmd.action(
    action<{ all?: boolean; authfile?: string }, [string | undefined]>(io, async (ctx, registryArg) => {
      if (!registryArg && !ctx.flags.all)
        throw new LadingError(ErrorCode.BadArgument, 'logout needs a registry or --all');
      const host = registryArg ? normaliseRegistryHost(registryArg) : undefined;
      const r = await logout({ host, all: ctx.flags.all, authFile: ctx.flags.authfile, env: io.env });
      await writeLine(io.out, r);
    }),
  );
}
