import { requireBin, run } from './bins.ts';

/** Environment for Nix commands: no binary cache (no network), no sandbox, nix-command enabled. */
export function nixEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NIX_CONFIG: 'substituters =\nsandbox = false\nexperimental-features = nix-command\nbuild-users-group =',
  };
  delete env.NIX_REMOTE;
  return env;
}

/** Runs a Nix tool (failing clearly when nix-bin is missing) and returns its trimmed stdout. */
export async function nix(cmd: string, args: string[], input?: string): Promise<string> {
  requireBin(cmd, 'nix-bin');
  return (await run(cmd, args, { env: nixEnv(), input })).stdout.toString().trim();
}

/** Runs a Nix tool and returns raw stdout bytes. */
export async function nixBytes(cmd: string, args: string[]): Promise<Buffer> {
  requireBin(cmd, 'nix-bin');
  return (await run(cmd, args, { env: nixEnv() })).stdout;
}
