import { readFile } from 'node:fs/promises';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type Credential, sealCredential } from './credential.ts';

/**
 * Parses hocker's credential file: `USERNAME=`/`PASSWORD=` lines (either order) or one
 * `BEARER_TOKEN=` line; values split at the first `=`. Errors name the file and line, never a value.
 */
export function parseCredentialFile(text: string, path: string): Credential {
  const fields: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const eq = line.indexOf('=');
    const key = eq === -1 ? '' : line.slice(0, eq).trim();
    if (!['USERNAME', 'PASSWORD', 'BEARER_TOKEN'].includes(key)) {
      throw new LadingError(
        ErrorCode.AuthFile,
        `could not parse credentials file ${path}: line ${i + 1} is not USERNAME=, PASSWORD= or BEARER_TOKEN=`,
        { path },
      );
    }
    fields[key] = line.slice(eq + 1);
  });
  const source = path;
  if (fields.BEARER_TOKEN !== undefined) {
    if (fields.USERNAME !== undefined || fields.PASSWORD !== undefined) {
      throw new LadingError(
        ErrorCode.AuthFile,
        `could not parse credentials file ${path}: give BEARER_TOKEN or USERNAME and PASSWORD, not both`,
        { path },
      );
    }
    return sealCredential({ kind: 'bearer', token: fields.BEARER_TOKEN, source });
  }
  if (fields.USERNAME !== undefined && fields.PASSWORD !== undefined) {
    return sealCredential({ kind: 'basic', username: fields.USERNAME, password: fields.PASSWORD, source });
  }
  throw new LadingError(
    ErrorCode.AuthFile,
    `could not parse credentials file ${path}: it needs USERNAME and PASSWORD lines, or BEARER_TOKEN`,
    { path },
  );
}

export async function readCredentialFile(path: string): Promise<Credential> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new LadingError(
      ErrorCode.AuthFile,
      `cannot read credentials file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      { path },
    );
  }
  return parseCredentialFile(text, path);
}
