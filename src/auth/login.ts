import { createReadStream, existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { writeFileAtomic } from '../util/index.ts';
import { encodeAuth, normaliseAuthKey } from './auth-file.ts';

/**
 * The auth file `login`/`logout` edit: `--authfile`, `REGISTRY_AUTH_FILE`,
 * `$XDG_RUNTIME_DIR/containers/auth.json` when that directory exists, else
 * `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`. (Podman writes
 * `/run/containers/<uid>/auth.json` when XDG_RUNTIME_DIR is unset, which does not survive a
 * reboot; lading keeps the login in the user's config instead. Both are on the lookup path.)
 */
export function loginAuthFile(env: NodeJS.ProcessEnv, authFile?: string): string {
  const explicit = authFile || env.REGISTRY_AUTH_FILE;
  if (explicit) return explicit;
  if (env.XDG_RUNTIME_DIR && existsSync(env.XDG_RUNTIME_DIR))
    return join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'containers', 'auth.json');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The whole document (every key kept) and its `auths`; undefined when the file does not exist. */
async function readDoc(
  path: string,
): Promise<{ doc: Record<string, unknown>; auths: Record<string, unknown> } | undefined> {
  let raw: string;
  try {
    raw = (await readAtMost(createReadStream(path), Limits.authFile, `auth file ${path}`)).toString('utf8');
  } catch (err) {
    if (isLadingError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new LadingError(ErrorCode.AuthFile, `cannot read auth file ${path}: ${code ?? 'error'}`, { path });
  }
  let doc: unknown;
  try {
    doc = raw.trim() === '' ? {} : JSON.parse(raw.replace(/^\uFEFF/, ''));
  } catch {
    doc = undefined;
  }
  if (!isObject(doc) || (doc.auths !== undefined && !isObject(doc.auths)))
    throw new LadingError(
      ErrorCode.AuthFile,
      `auth file ${path} is not a valid auth.json (a JSON object with an "auths" object); not changing it`,
      { path },
    );
  const auths = (doc.auths as Record<string, unknown> | undefined) ?? {};
  doc.auths = auths;
  return { doc, auths };
}

/** Object keys in Go's map order (bytewise), as `encoding/json` writes maps. */
function sortedByBytes(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const keys = Object.keys(o).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const k of keys) setKey(out, k, o[k]);
  return out;
}

/**
 * Podman's bytes: `auths` then `credHelpers` with sorted keys (Go maps), other keys kept after
 * them, tab indent, no final newline, `<>&` and U+2028/9 escaped as Go does; mode 0600, replaced
 * atomically.
 */
function emptyDoc(): { doc: Record<string, unknown>; auths: Record<string, unknown> } {
  const auths = {};
  return { doc: { auths }, auths };
}

async function writeDoc(path: string, doc: Record<string, unknown>): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const k of ['auths', 'credHelpers']) {
    const v = doc[k];
    if (v !== undefined) setKey(out, k, isObject(v) ? sortedByBytes(v) : v);
  }
  for (const [k, v] of Object.entries(doc)) if (!Object.hasOwn(out, k)) setKey(out, k, v);
  const text = JSON.stringify(out, null, '\t').replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, text, { mode: 0o600 });
}

function setKey(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

export interface LoginInput {
  /** Registry host, or `host/namespace` for a namespace-scoped login. */
  host: string;
  username: string;
  password: string;
  authFile?: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Stores `username`/`password` for `host` in the containers auth.json as podman does
 * (`{"auths": {"<key>": {"auth": base64(user:password)}}}`, key normalised, `docker.io` for Docker
 * Hub), keeping every other key of the file. Returns the path written. It does not check the
 * credentials: the caller verifies them against the registry first, then calls this.
 */
export async function login(input: LoginInput): Promise<string> {
  const path = loginAuthFile(input.env, input.authFile);
  const key = normaliseAuthKey(input.host);
  if (key === '' || key.startsWith('/'))
    throw new LadingError(
      ErrorCode.BadArgument,
      `login needs a registry host, not ${JSON.stringify(input.host)}`,
    );
  const { doc, auths } = (await readDoc(path)) ?? emptyDoc();
  setKey(auths, key, { auth: encodeAuth(input.username, input.password) });
  await writeDoc(path, doc);
  return path;
}

export interface LogoutInput {
  host?: string;
  /** Remove every entry of `auths` (other keys such as `credHelpers` stay). */
  all?: boolean;
  authFile?: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Removes the entry for `host` (every key of the same meaning, e.g. `docker.io` and
 * `https://index.docker.io/v1/`), or every entry with `all`. Returns a one-line summary.
 * Logging out of a registry with no entry is E_NOT_FOUND.
 */
export async function logout(input: LogoutInput): Promise<string> {
  const path = loginAuthFile(input.env, input.authFile);
  const read = await readDoc(path);
  if (input.all) {
    if (read) {
      read.doc.auths = {};
      await writeDoc(path, read.doc);
    }
    return `Removed login credentials for all registries from ${path}`;
  }
  if (!input.host) throw new LadingError(ErrorCode.BadArgument, 'logout needs a registry or --all');
  const key = normaliseAuthKey(input.host);
  const found = read ? Object.keys(read.auths).filter((k) => normaliseAuthKey(k) === key) : [];
  if (!read || found.length === 0)
    throw new LadingError(ErrorCode.NotFound, `not logged in to ${key} (no entry in ${path})`, { path });
  for (const k of found) delete read.auths[k];
  await writeDoc(path, read.doc);
  return `Removed login credentials for ${key} from ${path}`;
}
