import { createWriteStream, readFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, isLadingError, LadingError } from '../errors/index.ts';
import { holdTemp, releaseTemp, sweepStaleTemps, tempName } from './temp-paths.ts';

/**
 * A temp file name beside `path`, so the final rename stays on one file system. It is held (see
 * holdTemp): an interrupted command removes it.
 */
export function tempPathFor(path: string): string {
  return holdTemp(join(dirname(path), tempName(basename(path), true)));
}

export interface AtomicWriteOptions {
  /** File mode of the result (default 0o644). */
  mode?: number;
  /** Refuse to replace an existing file. */
  exclusive?: boolean;
  /** fsync before rename (default true). */
  fsync?: boolean;
  /**
   * Runs once every byte is written, before the file takes its place: a rejection leaves nothing
   * at `path` (export checks that no entry was refused here).
   */
  beforeCommit?: () => Promise<void>;
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
  await sweepStaleTemps(dirname(path));
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
    await opts.beforeCommit?.();
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
    releaseTemp(tmp);
  } catch (err) {
    await rm(tmp, { force: true });
    releaseTemp(tmp);
    throw isLadingError(err) ? err : ioError(err, path);
  }
}

/** Wraps a Node fs error into a LadingError that names the path. */
export function ioError(err: unknown, path: string): LadingError {
  const e = err as NodeJS.ErrnoException;
  if (isLadingError(err)) return err;
  if (e?.code === 'ENOSPC' || e?.code === 'EDQUOT')
    return new LadingError(ErrorCode.Io, noSpaceMessage(path, e.code === 'EDQUOT'), { path }, { cause: err });
  const why =
    e?.code === 'EACCES' || e?.code === 'EPERM'
      ? 'permission denied'
      : e?.code === 'ENOENT'
        ? 'no such file or directory'
        : (e?.message ?? String(err));
  return new LadingError(ErrorCode.Io, `cannot write ${path}: ${why}`, { path }, { cause: err });
}

/**
 * The file system holding `path`, as /proc/self/mounts names it: `SOURCE (TYPE, mounted at DIR)`,
 * or `DIR` alone; undefined without /proc.
 */
export function deviceOf(path: string): string | undefined {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return undefined;
  }
  const abs = resolve(path);
  let best: { source: string; dir: string; type: string } | undefined;
  for (const line of mounts.split('\n')) {
    const [source, rawDir, type] = line.split(' ');
    if (!source || !rawDir || !type) continue;
    // Spaces and other bytes are octal-escaped in /proc/self/mounts.
    const dir = rawDir.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    const inside = dir === '/' || abs === dir || abs.startsWith(`${dir}/`);
    if (inside && (!best || dir.length >= best.dir.length)) best = { source, dir, type };
  }
  return best ? `${best.source} (${best.type}, mounted at ${best.dir})` : undefined;
}

/** `no space left on DEVICE writing PATH`. */
export function noSpaceMessage(path: string, quota = false): string {
  const dev = deviceOf(dirname(path)) ?? 'device';
  return quota ? `disk quota exceeded on ${dev} writing ${path}` : `no space left on ${dev} writing ${path}`;
}

/**
 * A failure because the disk filled up, said about `path` (what the user named, not the temp file
 * the bytes went to); any other error as it is.
 */
export function noSpaceFor(err: unknown, path: string): unknown {
  const code = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code;
  const cause = isLadingError(err) ? err.cause : err;
  if (code(cause) === 'ENOSPC' || code(cause) === 'EDQUOT') return ioError(cause, path);
  return err;
}
