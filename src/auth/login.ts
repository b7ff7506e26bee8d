import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { writeFileAtomic } from '../util/index.ts';
import { encodeAuth, normaliseAuthKey } from './auth-file.ts';

/** The auth file `login`/`logout` edit: --authfile, REGISTRY_AUTH_FILE, then podman's default. */
export function loginAuthFile(env: NodeJS.ProcessEnv, authFile?: string): string {
  const explicit = authFile ?? env.REGISTRY_AUTH_FILE;
  if (explicit) return explicit;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'containers', 'auth.json');
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch {
    return {};
  }
  try {
    const v = raw.trim() ? JSON.parse(raw) : {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    return v as Record<string, unknown>;
  } catch {
    throw new LadingError(ErrorCode.AuthFile, `auth file ${path} is not valid JSON; not changing it`, {
      path,
    });
  }
}

async function writeJson(path: string, value: Record<string, unknown>): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, `${JSON.stringify(value, null, '\t')}\n`, { mode: 0o600 });
}

/**
 * Stores `username`/`password` for `host` (or `host/namespace`) in the containers auth.json, as
 * podman does, keeping every other key. Returns the file written. Verify the credentials first.
 */
export async function login(input: {
  host: string;
  username: string;
  password: string;
  authFile?: string;
  env: NodeJS.ProcessEnv;
}): Promise<string> {
  const path = loginAuthFile(input.env, input.authFile);
  const doc = await readJson(path);
  const auths = (typeof doc.auths === 'object' && doc.auths !== null ? doc.auths : {}) as Record<
    string,
    unknown
  >;
  const key = normaliseAuthKey(input.host);
  for (const k of Object.keys(auths)) if (k !== key && normaliseAuthKey(k) === key) delete auths[k];
  auths[key] = { auth: encodeAuth(input.username, input.password) };
  doc.auths = auths;
  await writeJson(path, doc);
  return path;
}

/** Removes the entry for `host` (or every entry with `all`). Returns a one-line summary. */
export async function logout(input: {
  host?: string;
  all?: boolean;
  authFile?: string;
  env: NodeJS.ProcessEnv;
}): Promise<string> {
  const path = loginAuthFile(input.env, input.authFile);
  const doc = await readJson(path);
  const auths = (typeof doc.auths === 'object' && doc.auths !== null ? doc.auths : {}) as Record<
    string,
    unknown
  >;
  if (input.all) {
    doc.auths = {};
    await writeJson(path, doc);
    return `Removed login credentials for all registries from ${path}`;
  }
  if (!input.host) throw new LadingError(ErrorCode.BadArgument, 'logout needs a registry or --all');
  const key = normaliseAuthKey(input.host);
  const found = Object.keys(auths).filter((k) => normaliseAuthKey(k) === key);
  if (found.length === 0)
    throw new LadingError(ErrorCode.NotFound, `not logged in to ${key} (in ${path})`, { path });
  for (const k of found) delete auths[k];
  doc.auths = auths;
  await writeJson(path, doc);
  return `Removed login credentials for ${key} from ${path}`;
}
