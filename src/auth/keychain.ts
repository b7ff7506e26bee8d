import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type AuthFile,
  decodeAuth,
  helperFor,
  lookupAuth,
  parseAuthFile,
  readAuthFile,
} from './auth-file.ts';
import { runCredentialHelper } from './cred-helper.ts';
import { ANONYMOUS, type Credential, sealCredential } from './credential.ts';
import { readCredentialFile } from './credential-file.ts';

export interface CredentialOptions {
  /** `--creds user:password`. */
  creds?: { username: string; password: string };
  /** `--registry-token`. */
  registryToken?: string;
  /** `--no-creds`. */
  noCreds?: boolean;
  /** `--authfile` (else `REGISTRY_AUTH_FILE`): the only auth file consulted. */
  authFile?: string;
  /** hocker's `--credential-file`. */
  credentialFile?: string;
}

export interface ResolveCredentialInput {
  /** Registry host as in references (`docker.io`, `ghcr.io`, `127.0.0.1:5000`). */
  host: string;
  repository: string;
  options?: CredentialOptions;
  /** The environment to read paths from (the library never reads process.env itself). */
  env: NodeJS.ProcessEnv;
}

export interface ResolvedCredential {
  credential: Credential;
  warnings: string[];
}

/** The auth files consulted, in order (containers-auth.json(5), then Docker's). */
export function authFilePaths(env: NodeJS.ProcessEnv, authFile?: string): string[] {
  const explicit = authFile ?? env.REGISTRY_AUTH_FILE;
  if (explicit) return [explicit];
  const home = env.HOME || homedir();
  const paths: string[] = [];
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'));
  paths.push(
    env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(home, '.docker', 'config.json'),
  );
  return paths;
}

function serverUrlFor(host: string): string {
  return host === 'docker.io' ? 'https://index.docker.io/v1/' : host;
}

async function fromFile(
  file: AuthFile,
  host: string,
  repository: string,
  env: NodeJS.ProcessEnv,
  warnings: string[],
): Promise<Credential | undefined> {
  const helper = helperFor(file, host);
  if (helper) {
    const r = await runCredentialHelper(helper, serverUrlFor(host), env);
    if (r.warning) warnings.push(r.warning);
    if (r.credential) return r.credential;
  }
  const hit = lookupAuth(file, host, repository);
  if (!hit) return undefined;
  const e = hit.entry;
  const source = file.path;
  if (e.registrytoken) return sealCredential({ kind: 'bearer', token: e.registrytoken, source });
  if (e.identitytoken) {
    const c: Credential = { kind: 'identity-token', token: e.identitytoken, source };
    return sealCredential(c);
  }
  if (e.auth) return sealCredential({ kind: 'basic', ...decodeAuth(e.auth, file.path), source });
  if (e.username !== undefined && e.password !== undefined) {
    return sealCredential({ kind: 'basic', username: e.username, password: e.password, source });
  }
  return undefined;
}

/**
 * Finds the credential for a repository, in this order: `--creds`, `--registry-token`,
 * `--no-creds`, `--credential-file`, `--authfile`/`REGISTRY_AUTH_FILE` (alone), `DOCKER_AUTH_CONFIG`
 * (JSON in the environment), `$XDG_RUNTIME_DIR/containers/auth.json`,
 * `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`, `$DOCKER_CONFIG/config.json` or
 * `~/.docker/config.json`. In each file `credHelpers[host]`, then `credsStore`, then `auths` (longest
 * key match); the first file that has a credential wins. Nothing found means anonymous.
 */
export async function resolveCredential(input: ResolveCredentialInput): Promise<ResolvedCredential> {
  const o = input.options ?? {};
  const warnings: string[] = [];
  if (o.creds)
    return { credential: sealCredential({ kind: 'basic', ...o.creds, source: '--creds' }), warnings };
  if (o.registryToken)
    return {
      credential: sealCredential({ kind: 'bearer', token: o.registryToken, source: '--registry-token' }),
      warnings,
    };
  if (o.noCreds) return { credential: sealCredential({ kind: 'anonymous', source: '--no-creds' }), warnings };
  if (o.credentialFile) return { credential: await readCredentialFile(o.credentialFile), warnings };
  const files: AuthFile[] = [];
  const explicit = o.authFile ?? input.env.REGISTRY_AUTH_FILE;
  if (!explicit && input.env.DOCKER_AUTH_CONFIG)
    files.push(parseAuthFile(input.env.DOCKER_AUTH_CONFIG, '$DOCKER_AUTH_CONFIG'));
  for (const p of authFilePaths(input.env, o.authFile)) {
    const f = await readAuthFile(p);
    if (f) files.push(f);
    else if (explicit) warnings.push(`auth file ${p} does not exist`);
  }
  for (const f of files) {
    const c = await fromFile(f, input.host, input.repository, input.env, warnings);
    if (c) return { credential: c, warnings };
  }
  return { credential: ANONYMOUS, warnings };
}
