import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type AuthFile,
  entryCredential,
  helperFor,
  lookupAuth,
  normaliseHost,
  parseAuthFile,
  readAuthFile,
} from './auth-file.ts';
import { helperServerUrl, runCredentialHelper } from './cred-helper.ts';
import { anonymous, type Credential, sealCredential } from './credential.ts';
import { readCredentialFile } from './credential-file.ts';

export interface CredentialOptions {
  /** `--creds user:password`. */
  creds?: { username: string; password: string };
  /** `--registry-token`: a registry token sent as `Bearer` directly. */
  registryToken?: string;
  /** `--no-creds`: anonymous access, no file consulted. */
  noCreds?: boolean;
  /** hocker's `--credential-file`. */
  credentialFile?: string;
  /** `--authfile` (else `REGISTRY_AUTH_FILE`): the only auth file consulted. */
  authFile?: string;
  /** Time limit for each credential helper (default 30 s). */
  helperTimeoutMs?: number;
}

export interface ResolveCredentialInput {
  /** Registry host as in references (`docker.io`, `ghcr.io`, `127.0.0.1:5000`). */
  host: string;
  /** Repository path (`library/alpine`, `org/app`). */
  repository: string;
  options?: CredentialOptions;
  /** The environment to read paths and helpers' PATH from (the library never reads process.env). */
  env: NodeJS.ProcessEnv;
  /** User id for `/run/containers/<uid>/auth.json` when XDG_RUNTIME_DIR is unset (default: this process's). */
  uid?: number;
}

export interface ResolvedCredential {
  credential: Credential;
  warnings: string[];
}

/** One auth file of the search path. */
export interface AuthFilePath {
  path: string;
  /** `~/.dockercfg` layout. */
  legacy: boolean;
}

function home(env: NodeJS.ProcessEnv): string {
  return env.HOME || homedir();
}

/**
 * The auth files consulted, in order, as containers/image does (containers-auth.json(5)):
 * `--authfile`/`REGISTRY_AUTH_FILE` alone, else `$XDG_RUNTIME_DIR/containers/auth.json` (or
 * `/run/containers/<uid>/auth.json` when XDG_RUNTIME_DIR is unset, as podman),
 * `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`, `$DOCKER_CONFIG/config.json` (or
 * `~/.docker/config.json`), `~/.dockercfg`.
 */
export function authFilePaths(env: NodeJS.ProcessEnv, authFile?: string, uid?: number): AuthFilePath[] {
  const explicit = authFile || env.REGISTRY_AUTH_FILE;
  if (explicit) return [{ path: explicit, legacy: false }];
  const paths: AuthFilePath[] = [];
  const id = uid ?? process.getuid?.();
  if (env.XDG_RUNTIME_DIR)
    paths.push({ path: join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'), legacy: false });
  else if (id !== undefined) paths.push({ path: `/run/containers/${id}/auth.json`, legacy: false });
  const configHome = env.XDG_CONFIG_HOME || join(home(env), '.config');
  paths.push({ path: join(configHome, 'containers', 'auth.json'), legacy: false });
  paths.push({
    path: env.DOCKER_CONFIG
      ? join(env.DOCKER_CONFIG, 'config.json')
      : join(home(env), '.docker', 'config.json'),
    legacy: false,
  });
  paths.push({ path: join(home(env), '.dockercfg'), legacy: true });
  return paths;
}

/** In one file: `credHelpers[host]`, then `credsStore`, then `auths` (longest key match). */
async function fromFile(
  file: AuthFile,
  host: string,
  repository: string,
  input: ResolveCredentialInput,
  warnings: string[],
): Promise<Credential | undefined> {
  const helper = helperFor(file, host);
  if (helper) {
    const r = await runCredentialHelper(helper, helperServerUrl(host), {
      env: input.env,
      timeoutMs: input.options?.helperTimeoutMs,
    });
    if (r.warning && !warnings.includes(r.warning)) warnings.push(r.warning);
    if (r.credential) return r.credential;
  }
  const hit = lookupAuth(file, host, repository);
  return hit && entryCredential(hit.entry, file.path, hit.key);
}

/**
 * Finds the credential for a repository, in this order: `--creds`, `--registry-token`,
 * `--no-creds`, `--credential-file`; then auth files: `--authfile`/`REGISTRY_AUTH_FILE` alone, or
 * `DOCKER_AUTH_CONFIG` (JSON in the environment, as GitLab CI sets it) followed by
 * {@link authFilePaths}. The first file with a credential for the repository wins. Nothing found
 * means anonymous. Missing helpers and missing explicit files are warnings, not errors, so public
 * images still work; malformed files are E_AUTH_FILE errors.
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
  if (o.noCreds) return { credential: anonymous('--no-creds'), warnings };
  if (o.credentialFile) return { credential: await readCredentialFile(o.credentialFile), warnings };
  const host = normaliseHost(input.host);
  const explicit = o.authFile || input.env.REGISTRY_AUTH_FILE;
  if (!explicit && input.env.DOCKER_AUTH_CONFIG) {
    const f = parseAuthFile(input.env.DOCKER_AUTH_CONFIG, '$DOCKER_AUTH_CONFIG');
    const c = await fromFile(f, host, input.repository, input, warnings);
    if (c) return { credential: c, warnings };
  }
  for (const p of authFilePaths(input.env, o.authFile, input.uid)) {
    const f = await readAuthFile(p.path, { legacy: p.legacy });
    if (!f) {
      if (explicit) warnings.push(`auth file ${p.path} does not exist; continuing without credentials`);
      continue;
    }
    const c = await fromFile(f, host, input.repository, input, warnings);
    if (c) return { credential: c, warnings };
  }
  return { credential: anonymous(), warnings };
}
