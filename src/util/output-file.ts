import { createWriteStream, type Stats } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { type AtomicWriteOptions, ioError, writeFileAtomic } from './atomic-file.ts';

/**
 * Writes a command's output file (every `-o`): what a user names there is never replaced by
 * something of another kind.
 * - absent or a regular file: written atomically (a temp file beside it, renamed over it), so a
 *   failure leaves the old file or nothing;
 * - a FIFO or a character device (`/dev/null`, `/dev/stdout`, a named pipe): written in place,
 *   never replaced by a regular file, not even as root;
 * - a symlink: followed, and its target written as above; the link itself stays. A dangling link
 *   is refused (lading does not create files through links);
 * - a directory, a block device or a socket: refused.
 * `exclusive` refuses an existing regular file (or a link to one).
 */
export async function writeOutputFile(
  path: string,
  source: Readable | AsyncIterable<Uint8Array> | Uint8Array | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const { target, st } = await outputTarget(path);
  if (!st || st.isFile()) {
    await writeFileAtomic(target, source, opts);
    return;
  }
  // FIFO or character device: in place (`exclusive` guards regular files; writing into a pipe
  // replaces nothing). Nothing to take back on failure.
  try {
    const out = createWriteStream(target, { flags: 'w' });
    await pipeline(typeof source === 'string' || source instanceof Uint8Array ? [source] : source, out);
    await opts.beforeCommit?.();
  } catch (err) {
    throw isLadingError(err) ? err : ioError(err, path);
  }
}

/** Where `-o PATH` writes, and what is there now; refuses what must not be written. */
export async function outputTarget(path: string): Promise<{ target: string; st: Stats | undefined }> {
  const l = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw ioError(err, path);
  });
  if (!l) return { target: path, st: undefined };
  let target = path;
  let st = l;
  if (l.isSymbolicLink()) {
    const s = await stat(path).catch(() => undefined);
    if (!s)
      throw new LadingError(
        ErrorCode.BadArgument,
        `${path} is a symlink to a file that does not exist: lading does not create files through links; remove the link or name its target`,
        { path },
      );
    // A regular file is replaced at its real place; a pipe or device is opened through the link
    // (`/dev/stdout` -> /proc/self/fd/1 has no real path to resolve to).
    if (s.isFile()) target = await realpath(path);
    st = s;
  }
  if (st.isFile() || st.isFIFO() || st.isCharacterDevice()) return { target, st };
  const kind = st.isDirectory() ? 'a directory' : st.isBlockDevice() ? 'a block device' : 'a socket';
  throw new LadingError(
    ErrorCode.BadArgument,
    `${path} is ${kind}${target !== path ? ` (through a symlink to ${target})` : ''}: name a file to write`,
    { path },
  );
}
