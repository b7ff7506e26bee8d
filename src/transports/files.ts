import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, openSync, writeSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  digestMismatch,
  Limits,
  VERIFIED_DIGEST,
  VerifyStream,
  verifyBytes,
} from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type BlobReader, type Descriptor, layerCompression } from '../image/index.ts';
import { ioError, releaseTemp, tempPathFor, writeFileAtomic } from '../util/index.ts';

/** Pipes `source` through a verifier for `desc`; errors of either end up on the result. */
export function verified(source: Readable, desc: { digest: Digest; size?: number }, where: string): Readable {
  // Already a verifier for this digest and size (a registry or cache stream): hashing again adds nothing.
  const self = source as Readable & { expectedSize?: number; [VERIFIED_DIGEST]?: Digest };
  if (self[VERIFIED_DIGEST] === desc.digest && (desc.size === undefined || self.expectedSize === desc.size)) {
    return source;
  }
  const v = new VerifyStream({ digest: desc.digest, size: desc.size, source: where });
  source.once('error', (err) => v.destroy(err));
  // A reader that stops early (one that only sniffs the first bytes) closes the source, too.
  v.once('close', () => {
    if (!source.readableEnded) source.destroy();
  });
  return source.pipe(v);
}

/** Opens a blob file of a local layout as a verified stream; a missing file is E_NOT_FOUND. */
export async function openBlobFile(path: string, desc: Descriptor, layout: string): Promise<Readable> {
  try {
    await stat(path);
  } catch {
    throw new LadingError(ErrorCode.NotFound, `blob ${desc.digest} missing from ${layout}`, { path });
  }
  return verified(createReadStream(path, { highWaterMark: 1 << 20 }), desc, path);
}

/** Writes a blob file atomically, verifying it on the way; nothing is left on failure. */
export async function writeBlobFile(
  path: string,
  source: Readable,
  desc: Descriptor,
  mode = 0o644,
  fsync = true,
): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFileAtomic(path, verified(source, desc, path), { mode, fsync });
}

/**
 * Writes a blob file from a synchronous reader: each piece goes to a temp file beside `path`
 * (writeSync) as it arrives; the size is counted (and the digest checked, unless the reader
 * verifies), then the file is renamed into place (`exclusive`: linked, refusing an existing
 * file). Nothing is left on failure.
 */
export async function writeBlobFileFrom(
  path: string,
  desc: Descriptor,
  reader: BlobReader,
  opts: { mode?: number; fsync?: boolean; exclusive?: boolean } = {},
): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const tmp = tempPathFor(path);
  const hash = reader.verified ? undefined : createHash(digestAlgorithm(desc.digest));
  let fd: number | undefined;
  let n = 0;
  try {
    fd = openSync(tmp, 'wx', opts.mode ?? 0o644);
    const out = fd;
    await reader.read((piece) => {
      n += piece.length;
      if (n > desc.size) throw sizeError(desc, n, path, 'more than');
      hash?.update(piece);
      for (let off = 0; off < piece.length; ) off += writeSync(out, piece, off, piece.length - off);
    });
    if (n !== desc.size) throw sizeError(desc, n, path, 'only');
    if (hash) {
      const found = `${digestAlgorithm(desc.digest)}:${hash.digest('hex')}`;
      if (found !== desc.digest) throw digestMismatch(desc.digest, found, n, path);
    }
    if (opts.fsync !== false) fsyncSync(out);
    closeSync(out);
    fd = undefined;
    if (opts.exclusive) {
      await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST')
          throw new LadingError(ErrorCode.Exists, `${path} already exists`, { path });
        throw err;
      });
      await rm(tmp, { force: true });
    } else await rename(tmp, path);
    releaseTemp(tmp);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    await rm(tmp, { force: true });
    releaseTemp(tmp);
    throw err instanceof LadingError ? err : ioError(err, path);
  }
}

function sizeError(desc: Descriptor, got: number, where: string, how: string): LadingError {
  return new LadingError(
    ErrorCode.SizeMismatch,
    `size mismatch for ${desc.digest} written to ${where}: expected ${desc.size} bytes, got ${how} ${got}`,
    { expected: desc.size, found: got, path: where },
  );
}

/** Reads a small file (manifest, index.json) with a cap, verifying a digest when given. */
export async function readSmallFile(
  path: string,
  what: string,
  digest?: Digest,
  limit: number = Limits.manifest,
): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    throw new LadingError(ErrorCode.NotFound, `${what} not found: ${path}`, { path });
  }
  if (size > limit)
    throw new LadingError(ErrorCode.TooLarge, `${what} ${path} is larger than ${limit} bytes`, { path });
  const data = await readFile(path);
  if (digest) verifyBytes(data, digest, undefined, path);
  return data;
}

/** True when `dir` is missing or an empty directory. */
export async function isMissingOrEmpty(dir: string): Promise<boolean> {
  const { readdir } = await import('node:fs/promises');
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

export function blobName(digest: Digest): string {
  return digestHex(digest);
}

/**
 * The uncompressed size a layer claims: an uncompressed layer's blob size, or a gzip layer's
 * ISIZE (its last 4 bytes: the size modulo 2^32 of the last member, so only a hint, which the
 * docker-archive writer checks while streaming). `tail(n)` reads the blob's last n bytes.
 */
export async function layerSizeHintFrom(
  desc: Descriptor,
  tail: (n: number) => Promise<Buffer | undefined>,
): Promise<number | undefined> {
  const compression = layerCompression(desc.mediaType);
  if (compression === 'none') return desc.size;
  if (compression !== 'gzip' || desc.size < 18) return undefined;
  const t = await tail(4).catch(() => undefined);
  return t?.length === 4 ? t.readUInt32LE(0) : undefined;
}

/** The last `n` bytes of a file (undefined when it is shorter or unreadable). */
export async function fileTail(path: string, n: number): Promise<Buffer | undefined> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      if (size < n) return undefined;
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, size - n);
      return bytesRead === n ? buf : undefined;
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}
