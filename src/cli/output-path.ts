import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { ImageLocation } from '../transports/index.ts';

async function kindOf(path: string): Promise<'directory' | 'other' | undefined> {
  try {
    return (await stat(path)).isDirectory() ? 'directory' : 'other';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // A parent that is a file: the first existing ancestor says which.
    if (code === 'ENOTDIR') return undefined;
    throw new LadingError(ErrorCode.Io, `cannot look at ${path}: ${code ?? String(err)}`, { path });
  }
}

/**
 * Readies a path a command will write, before anything is read or downloaded. The rule, the same
 * for every command (README, "Output paths"): missing parent directories are created, as
 * `mkdir -p` would; a parent that exists but is not a directory, or a destination of the other
 * kind (a directory where a file goes, a file where a directory goes), is an error that names it.
 * Whether an existing destination may be replaced is each writer's own check. Returns the
 * absolute path.
 */
export async function prepareOutput(
  cwd: string,
  path: string,
  kind: 'file' | 'directory',
  /** How the user gave it, for messages: `-o out.tar`, `oci:dir`. */
  shown: string,
  /** Whether a destination of the other kind is refused here (image writers refuse it themselves). */
  checkKind = true,
): Promise<string> {
  const abs = resolve(cwd, path);
  const here = await kindOf(abs);
  if (!checkKind && here !== undefined) return abs;
  if (kind === 'file' && here === 'directory')
    throw new LadingError(ErrorCode.BadArgument, `${shown} is a directory: name a file to write`, {
      path: abs,
    });
  if (kind === 'directory' && here === 'other')
    throw new LadingError(
      ErrorCode.BadArgument,
      `${shown} is a file, not a directory: give a directory (a new one, or one this command may write into)`,
      { path: abs },
    );
  if (here !== undefined) return abs;
  let parent = dirname(abs);
  for (;;) {
    const k = await kindOf(parent);
    if (k === 'directory') break;
    if (k === 'other')
      throw new LadingError(
        ErrorCode.BadArgument,
        `cannot write ${shown}: ${parent} is a file, not a directory (choose another path, or move that file away)`,
        { path: abs },
      );
    const up = dirname(parent);
    if (up === parent) break;
    parent = up;
  }
  try {
    await mkdir(dirname(abs), { recursive: true });
  } catch (err) {
    throw new LadingError(
      ErrorCode.Io,
      `cannot create the directory ${dirname(abs)} for ${shown}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      { path: abs },
    );
  }
  return abs;
}

/**
 * {@link prepareOutput} for an image destination on disk (oci:, dir:, oci-archive:,
 * docker-archive:): its parents; what may be there already is the writer's own check (made when
 * the sink opens, before the source is read). Returns it with its path made absolute (from `cwd`).
 */
export async function prepareDestination(cwd: string, dst: ImageLocation): Promise<ImageLocation> {
  switch (dst.transport) {
    case 'oci':
    case 'dir':
      return {
        ...dst,
        path: await prepareOutput(cwd, dst.path, 'directory', `${dst.transport}:${dst.path}`, false),
      };
    case 'oci-archive':
    case 'docker-archive':
      if (dst.path === '-') return dst;
      return {
        ...dst,
        path: await prepareOutput(cwd, dst.path, 'file', `${dst.transport}:${dst.path}`, false),
      };
    default:
      return dst;
  }
}
