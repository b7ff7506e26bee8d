import { createReadStream } from 'node:fs';
import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { type Credential, sealCredential } from './credential.ts';

const KEYS = ['USERNAME', 'PASSWORD', 'BEARER_TOKEN'] as const;
type Key = (typeof KEYS)[number];

function bad(path: string, why: string): LadingError {
  return new LadingError(ErrorCode.AuthFile, `could not parse credential file ${path}: ${why}`, { path });
}

/**
 * Parses hocker's credential file: `USERNAME=` and `PASSWORD=` lines (either order) or one
 * `BEARER_TOKEN=` line. Each line splits at its first `=`; the value is kept as written (it may
 * contain `=`). Blank lines are ignored. Errors name the file and line number, never a value.
 */
export function parseCredentialFile(text: string, path: string): Credential {
  const fields = new Map<Key, string>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const eq = line.indexOf('=');
    const key = eq === -1 ? '' : line.slice(0, eq).trim();
    if (!(KEYS as readonly string[]).includes(key))
      throw bad(path, `line ${i + 1} is not USERNAME=, PASSWORD= or BEARER_TOKEN=`);
    if (fields.has(key as Key)) throw bad(path, `line ${i + 1} repeats ${key}`);
    fields.set(key as Key, line.slice(eq + 1));
  });
  const source = path;
  const token = fields.get('BEARER_TOKEN');
  const username = fields.get('USERNAME');
  const password = fields.get('PASSWORD');
  if (token !== undefined) {
    if (username !== undefined || password !== undefined)
      throw bad(path, 'give BEARER_TOKEN or USERNAME and PASSWORD, not both');
    if (token === '') throw bad(path, 'BEARER_TOKEN is empty');
    return sealCredential({ kind: 'bearer', token, source });
  }
  if (username !== undefined && password !== undefined)
    return sealCredential({ kind: 'basic', username, password, source });
  if (username !== undefined) throw bad(path, 'it has USERNAME but no PASSWORD line');
  if (password !== undefined) throw bad(path, 'it has PASSWORD but no USERNAME line');
  throw bad(path, 'it needs USERNAME and PASSWORD lines, or a BEARER_TOKEN line');
}

/** Reads (at most `Limits.authFile` bytes) and parses a hocker credential file. */
export async function readCredentialFile(path: string): Promise<Credential> {
  let raw: Buffer;
  try {
    raw = await readAtMost(createReadStream(path), Limits.authFile, `credential file ${path}`);
  } catch (err) {
    if (isLadingError(err)) throw err;
    throw new LadingError(
      ErrorCode.AuthFile,
      `cannot read credential file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { path },
    );
  }
  return parseCredentialFile(raw.toString('utf8'), path);
}
