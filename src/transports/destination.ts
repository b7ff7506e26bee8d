import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, LadingError } from '../errors/index.ts';

/**
 * Destination checks shared by the local writers, so that no user file is replaced or deleted
 * unless it is recognisably an image of the kind being written (skopeo refuses the same cases).
 */

/** Names a `dir:` layout holds (skopeo's files: version, manifests, blobs, signatures). */
const DIR_ENTRY =
  /^(?:version|manifest\.json|[0-9a-f]{64}(?:\.manifest\.json|\.signature-\d+)?|signature-\d+)$/;

/** What a directory path holds: nothing, an empty directory, a directory's entries, or something else. */
export type PathState =
  | { kind: 'missing' }
  | { kind: 'dir'; entries: string[] }
  | { kind: 'other'; what: string };

export async function pathState(path: string, again = true): Promise<PathState> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // A dangling symlink is something, not nothing. Anything else found now was made since the
      // stat (another lading writing the same layout): look again.
      const l = await lstat(path).catch(() => undefined);
      if (!l) return { kind: 'missing' };
      if (l.isSymbolicLink()) return { kind: 'other', what: 'a dangling symbolic link' };
      return again ? pathState(path, false) : { kind: 'other', what: 'changing while lading looks at it' };
    }
    if (code === 'ENOTDIR') return { kind: 'other', what: 'below a file that is not a directory' };
    throw new LadingError(ErrorCode.Io, `cannot inspect ${path}: ${(err as Error).message}`, { path });
  }
  if (!st.isDirectory()) return { kind: 'other', what: st.isFile() ? 'a regular file' : 'not a directory' };
  return { kind: 'dir', entries: await readdir(path) };
}

function refuse(name: string, path: string, why: string): LadingError {
  return new LadingError(
    ErrorCode.Exists,
    `${name}: ${path} ${why}; refusing to write there (nothing was changed): name a new or empty directory, or remove it first`,
    { path },
  );
}

/**
 * Checks a `dir:` destination: missing or empty is fine; an existing `dir:` image (a `version`
 * file saying so and nothing but skopeo's file names) is replaced; anything else is refused.
 * Returns whether an existing image is there to be replaced.
 */
export async function checkDirDestination(name: string, path: string): Promise<boolean> {
  const s = await pathState(path);
  if (s.kind === 'missing') return false;
  if (s.kind === 'other') throw refuse(name, path, `is ${s.what}`);
  if (s.entries.length === 0) return false;
  const foreign = s.entries.find((e) => !DIR_ENTRY.test(e));
  if (foreign !== undefined)
    throw refuse(name, path, `is not empty and is not a dir: image (it holds ${JSON.stringify(foreign)})`);
  const version = await readFile(join(path, 'version'), 'utf8').catch(() => undefined);
  if (version === undefined || !/^Directory Transport Version: \d+\.\d+\n?$/.test(version))
    throw refuse(name, path, 'is not empty and has no dir: version file');
  return true;
}

/**
 * Checks an `oci:` destination: missing or empty is fine, an OCI layout (an `oci-layout` file
 * that says so) gains the image, anything else is refused. Returns the directory's entries
 * (undefined when it does not exist).
 */
export async function checkOciDestination(name: string, path: string): Promise<string[] | undefined> {
  const s = await pathState(path);
  if (s.kind === 'missing') return undefined;
  if (s.kind === 'other') throw refuse(name, path, `is ${s.what}`);
  if (s.entries.length === 0) return s.entries;
  const marker = await readFile(join(path, 'oci-layout'), 'utf8').catch(() => undefined);
  let ok = false;
  try {
    ok = marker !== undefined && typeof JSON.parse(marker).imageLayoutVersion === 'string';
  } catch {
    ok = false;
  }
  if (!ok)
    throw refuse(
      name,
      path,
      `is not empty and is not an OCI layout (no valid oci-layout file; it holds ${s.entries
        .slice(0, 3)
        .map((e) => JSON.stringify(e))
        .join(', ')}${s.entries.length > 3 ? ', …' : ''})`,
    );
  return s.entries;
}

/** Refuses an existing path where an archive file is to be written (archives are never overwritten). */
export async function checkNewFile(name: string, path: string): Promise<void> {
  const exists = await lstat(path).then(
    (st) => (st.isDirectory() ? 'a directory' : st.isFile() ? 'an existing file' : 'an existing path'),
    () => undefined,
  );
  if (exists)
    throw new LadingError(
      ErrorCode.Exists,
      `${name}: ${path} is ${exists}; refusing to overwrite it (nothing was changed): name a new file, or remove it first`,
      { path },
    );
}
