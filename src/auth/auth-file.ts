import { readFile, stat } from 'node:fs/promises';
import { Limits } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** One `auths` entry of a docker config.json / containers auth.json. */
export interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** The parts of an auth file lading reads. */
export interface AuthFile {
  path: string;
  auths: Record<string, AuthEntry>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

const HUB_KEYS = [
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'https://index.docker.io/v1/',
  'https://index.docker.io/v1',
];

/** Reads an auth file; undefined when it does not exist. Malformed content is an error naming the file only. */
export async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return undefined;
  }
  if (size > Limits.authFile)
    throw new LadingError(ErrorCode.AuthFile, `auth file ${path} is too large`, { path });
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    throw new LadingError(
      ErrorCode.AuthFile,
      `cannot read auth file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { path },
    );
  }
  return parseAuthFile(raw, path);
}

/** Parses auth-file text (never echoing it in errors). */
export function parseAuthFile(raw: string, path: string): AuthFile {
  let json: unknown;
  try {
    json = raw.trim() === '' ? {} : JSON.parse(raw);
  } catch {
    throw new LadingError(ErrorCode.AuthFile, `auth file ${path} is not valid JSON`, { path });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new LadingError(ErrorCode.AuthFile, `auth file ${path} is not a JSON object`, { path });
  }
  const o = json as Record<string, unknown>;
  const auths: Record<string, AuthEntry> = {};
  if (isObject(o.auths)) {
    for (const [k, v] of Object.entries(o.auths)) {
      if (!isObject(v)) continue;
      const e: AuthEntry = {};
      for (const f of ['auth', 'username', 'password', 'identitytoken', 'registrytoken'] as const) {
        if (typeof v[f] === 'string') e[f] = v[f] as string;
      }
      auths[k] = e;
    }
  }
  const credHelpers: Record<string, string> = {};
  if (isObject(o.credHelpers)) {
    for (const [k, v] of Object.entries(o.credHelpers)) if (typeof v === 'string' && v) credHelpers[k] = v;
  }
  const out: AuthFile = { path, auths, credHelpers };
  if (typeof o.credsStore === 'string' && o.credsStore) out.credsStore = o.credsStore;
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Normalises an auths key to `host[/path]` (drops scheme, trailing slash, `/v1`/`/v2`; Hub aliases → docker.io). */
export function normaliseAuthKey(key: string): string {
  if (HUB_KEYS.includes(key)) return 'docker.io';
  let k = key.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  k = k.replace(/\/v[12]$/, '');
  const slash = k.indexOf('/');
  const host = slash === -1 ? k : k.slice(0, slash);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io')
    k = `docker.io${slash === -1 ? '' : k.slice(slash)}`;
  return k;
}

/**
 * Finds the entry for `host`/`repository`: keys may be a host or host/namespace; the longest match
 * wins (`quay.io/org/repo` over `quay.io/org` over `quay.io`).
 */
export function lookupAuth(
  file: AuthFile,
  host: string,
  repository: string,
): { key: string; entry: AuthEntry } | undefined {
  const target = `${host}/${repository}`;
  let best: { key: string; entry: AuthEntry; len: number } | undefined;
  for (const [rawKey, entry] of Object.entries(file.auths)) {
    const key = normaliseAuthKey(rawKey);
    if (key === host || target === key || target.startsWith(`${key}/`)) {
      if (!best || key.length > best.len) best = { key: rawKey, entry, len: key.length };
    }
  }
  return best && { key: best.key, entry: best.entry };
}

/** The credential helper configured for `host`, if any: `credHelpers[host]` beats `credsStore`. */
export function helperFor(file: AuthFile, host: string): string | undefined {
  for (const [k, v] of Object.entries(file.credHelpers)) if (normaliseAuthKey(k) === host) return v;
  return file.credsStore;
}

/** Decodes an `auth` value (base64 `user:password`; the password may contain `:`). */
export function decodeAuth(auth: string, path: string): { username: string; password: string } {
  const text = Buffer.from(auth, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i <= 0)
    throw new LadingError(
      ErrorCode.AuthFile,
      `auth file ${path}: an "auth" value is not base64 of user:password`,
      { path },
    );
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

export function encodeAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`).toString('base64');
}
