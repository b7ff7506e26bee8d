import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { holdTemp } from './temp-paths.ts';

/**
 * A temp file name beside `path`, so the final rename stays on one file system. It is held (see
 * holdTemp): an interrupted command removes it.
 */
export function tempPathFor(path: string): string {
  return holdTemp(
    join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`),
  );
}

export interface AtomicWriteOptions {
  /** File mode of the result (default 0o644). */
  mode?: number;
  /** Refuse to replace an existing file. */
  exclusive?: boolean;
  /** fsync before rename (default true). */
  fsync?: boolean;
}

/**
 * Streams `source` into `path` through a temp file beside it: fsync, then rename. On any error the
 * temp file is removed and `path` is untouched, so no partial file is ever left where a good one is
 * expected.
 */
export async function writeFileAtomic(
  path: string,
  source: Readable | AsyncIterable<Uint8Array> | Uint8Array | string,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const out = createWriteStream(tmp, { flags: 'wx', mode: opts.mode ?? 0o644 });
    if (typeof source === 'string' || source instanceof Uint8Array) {
      await pipeline([source], out);
    } else {
      await pipeline(source, out);
    }
    if (opts.fsync !== false) {
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    if (opts.exclusive) {
      // link() fails if the target exists, unlike rename().
      const { link } = await import('node:fs/promises');
      await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST')
          throw new LadingError(ErrorCode.Exists, `${path} already exists`, { path });
        throw err;
      });
      await rm(tmp, { force: true });
    } else {
      await rename(tmp, path);
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw isLadingError(err) ? err : ioError(err, path);
  }
}

/** Wraps a Node fs error into a LadingError that names the path. */
export function ioError(err: unknown, path: string): LadingError {
  const e = err as NodeJS.ErrnoException;
  if (isLadingError(err)) return err;
  const why =
    e?.code === 'ENOSPC'
      ? 'no space left on device'
      : e?.code === 'EACCES' || e?.code === 'EPERM'
        ? 'permission denied'
        : e?.code === 'ENOENT'
          ? 'no such file or directory'
          : (e?.message ?? String(err));
  return new LadingError(ErrorCode.Io, `cannot write ${path}: ${why}`, { path }, { cause: err });
}
