import { createReadStream } from 'node:fs';
import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { type Credential, sealCredential } from './credential.ts';

/** One `auths` entry of a docker config.json / containers auth.json. */
export interface AuthEntry {
  /** base64 of `user:password`. */
  auth?: string;
  username?: string;
  password?: string;
  /** OAuth2 refresh token (exchanged at the token realm). */
  identitytoken?: string;
  /** Registry token, sent as `Bearer` directly. */
  registrytoken?: string;
}

/** The parts of an auth file lading reads, keys as written in the file (in file order). */
export interface AuthFile {
  path: string;
  /** `~/.dockercfg` layout: the top-level object is the `auths` map and keys are hosts only. */
  legacy: boolean;
  auths: Map<string, AuthEntry>;
  /** `credHelpers`: registry → helper name (`docker-credential-<name>`). */
  credHelpers: Map<string, string>;
  /** `credsStore`: the helper for every registry. */
  credsStore?: string;
}

const ENTRY_FIELDS = ['auth', 'username', 'password', 'identitytoken', 'registrytoken'] as const;
const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * Reads an auth file (at most `Limits.authFile` bytes); undefined when it does not exist.
 * Unreadable or malformed files are E_AUTH_FILE errors naming the file, never its content.
 */
export async function readAuthFile(
  path: string,
  opts: { legacy?: boolean } = {},
): Promise<AuthFile | undefined> {
  let raw: Buffer;
  try {
    raw = await readAtMost(createReadStream(path), Limits.authFile, `auth file ${path}`);
  } catch (err) {
    if (isLadingError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new LadingError(ErrorCode.AuthFile, `cannot read auth file ${path}: ${code ?? 'error'}`, {
      path,
    });
  }
  return parseAuthFile(raw.toString('utf8'), path, opts);
}

/** Parses auth-file text. Any JSON object is accepted (unknown or mistyped fields are ignored). */
export function parseAuthFile(text: string, path: string, opts: { legacy?: boolean } = {}): AuthFile {
  const legacy = opts.legacy === true;
  let json: unknown;
  const body = text.replace(/^\uFEFF/, '');
  try {
    json = body.trim() === '' ? {} : JSON.parse(body);
  } catch {
    throw new LadingError(ErrorCode.AuthFile, `auth file ${path} is not valid JSON`, { path });
  }
  if (!isObject(json))
    throw new LadingError(ErrorCode.AuthFile, `auth file ${path} is not a JSON object`, { path });
  const file: AuthFile = { path, legacy, auths: new Map(), credHelpers: new Map() };
  const auths = legacy ? json : json.auths;
  if (isObject(auths)) {
    for (const [k, v] of Object.entries(auths)) {
      if (!isObject(v)) continue;
      const e: AuthEntry = {};
      for (const f of ENTRY_FIELDS) if (typeof v[f] === 'string') e[f] = v[f] as string;
      file.auths.set(k, e);
    }
  }
  if (!legacy) {
    if (isObject(json.credHelpers)) {
      for (const [k, v] of Object.entries(json.credHelpers))
        if (typeof v === 'string' && v !== '') file.credHelpers.set(k, v);
    }
    if (typeof json.credsStore === 'string' && json.credsStore !== '') file.credsStore = json.credsStore;
  }
  return file;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Docker Hub's aliases → `docker.io`; other hosts lower-cased. */
export function normaliseHost(host: string): string {
  const h = host.toLowerCase();
  return HUB_HOSTS.has(h) ? 'docker.io' : h;
}

/**
 * Normalises an auths/credHelpers key to `host[/namespace]` as containers/image does: a key with
 * `http://` or `https://` is a host only (`https://index.docker.io/v1/` → `docker.io`), a key
 * without a scheme may carry a namespace (`quay.io/org/repo`); Docker Hub aliases become
 * `docker.io`. In the legacy `.dockercfg` layout every key is a host.
 */
export function normaliseAuthKey(key: string, legacy = false): string {
  const stripped = key.replace(/^https?:\/\//i, '');
  let k = legacy || stripped !== key ? stripped.split('/')[0]! : stripped.replace(/\/+$/, '');
  const slash = k.indexOf('/');
  const host = slash === -1 ? k : k.slice(0, slash);
  k = normaliseHost(host) + (slash === -1 ? '' : k.slice(slash));
  return k;
}

/**
 * Finds the entry for `host`/`repository`. Keys may be a host or `host/namespace`; the longest
 * match wins (`quay.io/org/repo` over `quay.io/org` over `quay.io`), matching whole path
 * components. Among keys of the same meaning, one written in normal form wins, else the first.
 */
export function lookupAuth(
  file: AuthFile,
  host: string,
  repository: string,
): { key: string; entry: AuthEntry } | undefined {
  const h = normaliseHost(host);
  const target = repository ? `${h}/${repository}` : h;
  let best: { key: string; entry: AuthEntry; len: number; exact: boolean } | undefined;
  for (const [rawKey, entry] of file.auths) {
    const key = normaliseAuthKey(rawKey, file.legacy);
    if (key !== h && key !== target && !target.startsWith(`${key}/`)) continue;
    const exact = rawKey === key;
    if (!best || key.length > best.len || (key.length === best.len && exact && !best.exact))
      best = { key: rawKey, entry, len: key.length, exact };
  }
  return best && { key: best.key, entry: best.entry };
}

/** The credential helper for `host`: `credHelpers[host]` beats `credsStore`. */
export function helperFor(file: AuthFile, host: string): string | undefined {
  const h = normaliseHost(host);
  for (const [k, v] of file.credHelpers) if (normaliseAuthKey(k, true) === h) return v;
  return file.credsStore;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes an `auth` value: base64 of `user:password`, split at the first `:` (the password may
 * contain `:`). Errors name the file and key only.
 */
export function decodeAuth(auth: string, path: string, key = ''): { username: string; password: string } {
  const b64 = auth.replace(/\s+/g, '');
  const text = BASE64.test(b64) ? Buffer.from(b64, 'base64').toString('utf8') : '';
  const i = text.indexOf(':');
  if (i === -1) {
    throw new LadingError(
      ErrorCode.AuthFile,
      `auth file ${path}: the "auth" value${key ? ` of ${JSON.stringify(key)}` : ''} is not base64 of user:password`,
      { path },
    );
  }
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

export function encodeAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/**
 * The credential an entry holds, as containers/image reads it: `registrytoken` (bearer), then
 * `identitytoken` (with the user name from `auth`, if any), then `auth`, then
 * `username`/`password`. Undefined for an entry with none (Docker writes `{}` when a helper holds
 * the secret), so the search goes on.
 */
export function entryCredential(entry: AuthEntry, path: string, key: string): Credential | undefined {
  const source = path;
  if (entry.registrytoken) return sealCredential({ kind: 'bearer', token: entry.registrytoken, source });
  const basic = entry.auth ? decodeAuth(entry.auth, path, key) : undefined;
  if (entry.identitytoken) {
    const username = basic?.username || entry.username;
    return sealCredential(
      username
        ? { kind: 'identity-token', token: entry.identitytoken, username, source }
        : { kind: 'identity-token', token: entry.identitytoken, source },
    );
  }
  if (basic) return sealCredential({ kind: 'basic', ...basic, source });
  if (entry.username && entry.password !== undefined)
    return sealCredential({ kind: 'basic', username: entry.username, password: entry.password, source });
  return undefined;
}
