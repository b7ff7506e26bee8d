import { createHash, type Hash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  fsyncSync,
  openSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type Digest,
  digestAlgorithm,
  digestHex,
  Limits,
  parseDigest,
  VERIFIED_DIGEST,
  VerifyStream,
  verifyBytes,
} from '../digest/index.ts';
import { ErrorCode, hasCode, LadingError } from '../errors/index.ts';
import { holdTemp, ioError, releaseTemp, sweepStaleTemps, tempName } from '../util/index.ts';

/** The on-disk format version, part of every path so a new format never misreads an old one. */
export const CACHE_FORMAT = 'v1';

export interface CacheEntry {
  digest: Digest;
  size: number;
  /** Last modification (write or touch), ms since epoch. */
  mtimeMs: number;
}

/**
 * A content-addressed store of verified blobs (cacache-style): `<root>/v1/blobs/<alg>/<ab>/<hex>`.
 * Writes go to a temp file in the same directory, are verified while streaming, fsynced and renamed
 * into place, so a reader never sees a partial entry and several processes can share one cache.
 * Reads are verified again; a corrupt entry is removed and reported as a miss-with-error so the
 * caller fetches again.
 */
export interface BlobCacheOptions {
  /**
   * fsync each entry before it is renamed into place (default false). Every read verifies the
   * digest and drops a bad entry, so a write torn by a power failure costs a refetch, never a wrong
   * result; fsync only trades speed for fewer refetches after such a crash.
   */
  fsync?: boolean;
}

/** A cache entry being written synchronously (see {@link BlobCache.writer}). */
export interface CacheWriter {
  write(piece: Uint8Array): void;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** One read of an entry in progress (forEachChunk, copies). */
interface EntryRead {
  digest: Digest;
  size: number;
  path: string;
  /** The file's identity when the read began (see `#trusted`). */
  id: string | undefined;
  fh: FileHandle;
  /** Hashes the bytes read, unless this process trusts the entry already. */
  verify: Hash | undefined;
  offset: number;
}

export class BlobCache {
  readonly root: string;
  readonly #fsync: boolean;
  readonly #writes = new Map<string, Promise<void>>();
  /**
   * Entries this process wrote or verified, with the file identity (inode, size, mtime) it had
   * then: while that is unchanged, its content was hashed already.
   */
  readonly #trusted = new Map<string, string>();

  constructor(root: string, opts: BlobCacheOptions = {}) {
    this.root = root;
    this.#fsync = opts.fsync === true;
  }

  /** The path an entry lives at (whether or not it exists). */
  pathFor(digest: Digest): string {
    const hex = digestHex(digest);
    return join(this.root, CACHE_FORMAT, 'blobs', digestAlgorithm(digest), hex.slice(0, 2), hex);
  }

  /** Size of a cached entry, or undefined. Does not verify the content. */
  async size(digest: Digest): Promise<number | undefined> {
    try {
      const s = await stat(this.pathFor(digest));
      return s.isFile() ? s.size : undefined;
    } catch {
      return undefined;
    }
  }

  async has(digest: Digest, size?: number): Promise<boolean> {
    const s = await this.size(digest);
    return s !== undefined && (size === undefined || s === size);
  }

  /**
   * Opens a cached blob as a verified stream, or returns undefined when it is not cached (or its
   * size is wrong, in which case the entry is removed). A digest mismatch surfaces as a stream
   * error (E_DIGEST_MISMATCH) and removes the entry.
   */
  async open(digest: Digest, size?: number): Promise<Readable | undefined> {
    const path = this.pathFor(digest);
    // Temp files of killed writers of this shard go (once per shard and process).
    await sweepStaleTemps(join(path, '..'));
    const actual = await this.size(digest);
    if (actual === undefined) return undefined;
    if (size !== undefined && actual !== size) {
      await rm(path, { force: true });
      return undefined;
    }
    const id = await fileIdentity(path);
    const file = createReadStream(path, { highWaterMark: 1 << 20 });
    // Written or verified by this process already, and not touched since: no need to hash it again.
    if (id !== undefined && this.#trusted.get(digest) === id) return file;
    const verify = new VerifyStream({
      digest,
      size: actual,
      source: `cache entry ${path}`,
      // Gone before anyone sees the error, so that reading the blob again fetches it afresh.
      onFailure: (err) => {
        rmSync(path, { force: true });
        err.temporary = true;
        err.message += '; the entry was removed, so the next read fetches the blob again';
      },
    });
    pipeline(file, verify)
      .then(() => {
        if (id !== undefined) this.#trusted.set(digest, id);
      })
      .catch(async (err) => {
        if (hasCode(err, ErrorCode.DigestMismatch, ErrorCode.SizeMismatch)) await rm(path, { force: true });
      });
    return verify;
  }

  /**
   * Reads a cached blob piece by piece into `fn`, through one reused buffer, without allocating
   * per piece. A piece is valid only during the call: when `fn` returns, the memory moves on
   * (`ArrayBuffer.prototype.transfer`) and the piece it was handed is detached, so a piece kept
   * past its call reads as empty (byteLength 0) instead of silently changing under its keeper.
   * Keep bytes by copying them, or use {@link copies}. An entry not trusted by this process is
   * hashed on the way and fails at its end (and is removed) when it does not match.
   */
  async forEachChunk(
    digest: Digest,
    size: number,
    fn: (chunk: Buffer) => void,
    bufferSize = 1 << 20,
  ): Promise<void> {
    const read = await this.#startRead(digest, size);
    let memory = new ArrayBuffer(Math.max(1, Math.min(bufferSize, size)));
    try {
      for (;;) {
        const { bytesRead } = await read.fh.read(new Uint8Array(memory), 0, memory.byteLength, read.offset);
        if (bytesRead === 0) break;
        read.offset += bytesRead;
        const chunk = Buffer.from(memory, 0, bytesRead);
        read.verify?.update(chunk);
        try {
          fn(chunk);
        } finally {
          // Every view of the old memory, `chunk` included, is detached from here on.
          memory = moveOn(memory);
        }
      }
      await this.#endRead(read);
    } finally {
      await read.fh.close();
    }
  }

  /**
   * Reads a cached blob as chunks that each own their memory (a consumer may keep them, as a
   * stream does); verified as {@link forEachChunk} is. Costs an allocation per chunk: use
   * forEachChunk where each piece is consumed at once.
   */
  async *copies(digest: Digest, size: number, bufferSize = 1 << 20): AsyncGenerator<Buffer> {
    const read = await this.#startRead(digest, size);
    try {
      for (;;) {
        const buf = Buffer.allocUnsafeSlow(Math.max(1, Math.min(bufferSize, size - read.offset)));
        const { bytesRead } = await read.fh.read(buf, 0, buf.length, read.offset);
        if (bytesRead === 0) break;
        read.offset += bytesRead;
        const chunk = buf.subarray(0, bytesRead);
        read.verify?.update(chunk);
        yield chunk;
      }
      await this.#endRead(read);
    } finally {
      await read.fh.close();
    }
  }

  async #startRead(digest: Digest, size: number): Promise<EntryRead> {
    const path = this.pathFor(digest);
    const id = await fileIdentity(path);
    const trusted = id !== undefined && this.#trusted.get(digest) === id;
    const fh = await open(path, 'r').catch((err: unknown) => {
      throw ioError(err, path);
    });
    const verify = trusted ? undefined : createHash(digestAlgorithm(digest));
    return { digest, size, path, id, fh, verify, offset: 0 };
  }

  /** The end of a read: a wrong size or digest removes the entry and throws (temporary). */
  async #endRead(read: EntryRead): Promise<void> {
    const { digest, size, path, verify, offset } = read;
    const actual = verify ? `${digestAlgorithm(digest)}:${verify.digest('hex')}` : digest;
    if (offset !== size || actual !== digest) {
      await rm(path, { force: true });
      throw new LadingError(
        offset !== size ? ErrorCode.SizeMismatch : ErrorCode.DigestMismatch,
        `cache entry ${path} is corrupt: expected ${digest} (${size} bytes), found ${actual} (${offset} bytes); it was removed, so the next read fetches the blob again`,
        // Removed: reading the blob again fetches it afresh.
        { path, expected: digest, found: actual, temporary: true },
      );
    }
    if (verify && read.id !== undefined) this.#trusted.set(digest, read.id);
  }

  /** Reads a small cached blob into memory, verified; a corrupt entry is removed and undefined returned. */
  async read(digest: Digest, limit: number = Limits.manifest): Promise<Buffer | undefined> {
    const path = this.pathFor(digest);
    const s = await this.size(digest);
    if (s === undefined) return undefined;
    if (s > limit) return undefined;
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch {
      return undefined;
    }
    try {
      verifyBytes(data, digest);
    } catch {
      await rm(path, { force: true });
      return undefined;
    }
    return data;
  }

  /** Waits for this process's write of `digest` in progress, if any (a tee's); never throws. */
  async settled(digest: Digest): Promise<void> {
    await this.#writes.get(digest)?.catch(() => {});
  }

  /** Stores bytes already in memory (verified first). */
  async writeBytes(digest: Digest, data: Uint8Array): Promise<void> {
    verifyBytes(data, digest, undefined, 'data for the cache');
    await this.write(digest, [data], data.length);
  }

  /**
   * Stores a stream under `digest`. The stream is verified while written (unless `verified` says
   * the source verifies itself and errors at its end on bad bytes); on any failure nothing is left
   * behind. Concurrent writes of one digest in this process are de-duplicated; across
   * processes the last rename wins, which is fine because the content is the same.
   */
  async write(
    digest: Digest,
    source: Readable | AsyncIterable<Uint8Array> | Uint8Array[],
    size?: number,
    opts: { verified?: boolean } = {},
  ): Promise<void> {
    parseDigest(digest);
    const key = digest;
    const running = this.#writes.get(key);
    if (running) {
      // Drain the duplicate source so its producer is not left hanging.
      if (typeof (source as Readable).resume === 'function') (source as Readable).resume();
      return running;
    }
    const p = this.#write(digest, source, size, opts.verified === true).finally(() =>
      this.#writes.delete(key),
    );
    this.#writes.set(key, p);
    return p;
  }

  async #write(
    digest: Digest,
    source: Readable | AsyncIterable<Uint8Array> | Uint8Array[],
    size: number | undefined,
    verified: boolean,
  ): Promise<void> {
    const path = this.pathFor(digest);
    const dir = join(path, '..');
    // Named with this process's id and start time: a run after a SIGKILL removes the leftovers.
    const tmp = holdTemp(join(dir, tempName(digestHex(digest), true)));
    try {
      await mkdir(dir, { recursive: true });
      await sweepStaleTemps(dir);
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, highWaterMark: 1 << 20 });
      // A source that verifies itself (a registry blob stream) errors instead of ending on bad bytes.
      if (verified) await pipeline(source as AsyncIterable<Uint8Array>, out);
      else
        await pipeline(
          source as AsyncIterable<Uint8Array>,
          new VerifyStream({ digest, size, source: 'cache write' }),
          out,
        );
      if (this.#fsync) {
        const fh = await open(tmp, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await rename(tmp, path);
      const id = await fileIdentity(path);
      if (id !== undefined) this.#trusted.set(digest, id);
    } catch (err) {
      await rm(tmp, { force: true });
      throw hasCode(err) ? err : ioError(err, path);
    }
  }

  /**
   * An entry written piece by piece, synchronously, by a consumer that checks the bytes itself
   * (the registry's blob reader): each piece goes to a temp file as it passes, `commit()` once the
   * digest checked out, `abort()` otherwise. A failed write (disk full) only means no entry: the
   * writer stops writing and `commit()` leaves nothing.
   */
  async writer(digest: Digest): Promise<CacheWriter> {
    parseDigest(digest);
    const path = this.pathFor(digest);
    const dir = join(path, '..');
    await mkdir(dir, { recursive: true });
    await sweepStaleTemps(dir);
    const tmp = holdTemp(join(dir, tempName(digestHex(digest), true)));
    let fd: number | undefined = openSync(tmp, 'wx', 0o644);
    let failed = false;
    const close = (): void => {
      if (fd === undefined) return;
      try {
        closeSync(fd);
      } catch {
        failed = true;
      }
      fd = undefined;
    };
    const drop = async (): Promise<void> => {
      close();
      await rm(tmp, { force: true });
      releaseTemp(tmp);
    };
    return {
      write: (piece: Uint8Array): void => {
        if (failed || fd === undefined) return;
        try {
          for (let off = 0; off < piece.length; ) off += writeSync(fd, piece, off, piece.length - off);
        } catch {
          failed = true;
        }
      },
      commit: async (): Promise<void> => {
        if (failed || fd === undefined) return drop();
        if (this.#fsync) {
          try {
            fsyncSync(fd);
          } catch {
            failed = true;
          }
        }
        close();
        if (failed) return drop();
        await rename(tmp, path);
        releaseTemp(tmp);
        const id = await fileIdentity(path);
        if (id !== undefined) this.#trusted.set(digest, id);
      },
      abort: drop,
    };
  }

  /**
   * Passes `source` through unchanged while also writing it to the cache. The cache entry is
   * committed only if the whole stream arrives and verifies; a consumer that stops early leaves
   * no entry. Errors of the cache write never break the pass-through.
   */
  tee(digest: Digest, source: Readable, size?: number, onCacheError?: (err: unknown) => void): Readable {
    const toCache = new PassThrough({ highWaterMark: 1 << 20 });
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    source.on('data', (chunk: Buffer) => {
      toCache.write(chunk);
      if (!out.write(chunk)) {
        source.pause();
        out.once('drain', () => source.resume());
      }
    });
    source.once('end', () => {
      toCache.end();
      out.end();
    });
    source.once('error', (err) => {
      toCache.destroy(err);
      out.destroy(err);
    });
    out.once('close', () => {
      if (!source.readableEnded) {
        source.destroy();
        toCache.destroy(new LadingError(ErrorCode.Aborted, 'consumer stopped early'));
      }
    });
    // A verifying source ends only after its digest checked out, so the entry need not be hashed again.
    const verified = (source as unknown as Record<symbol, unknown>)[VERIFIED_DIGEST] === digest;
    this.write(digest, toCache, size, { verified }).catch((err) => onCacheError?.(err));
    return out;
  }

  /** Every entry (for `lading cache ls`). */
  async list(): Promise<CacheEntry[]> {
    const out: CacheEntry[] = [];
    const base = join(this.root, CACHE_FORMAT, 'blobs');
    for (const alg of await safeReaddir(base)) {
      for (const prefix of await safeReaddir(join(base, alg))) {
        await sweepStaleTemps(join(base, alg, prefix));
        for (const name of await safeReaddir(join(base, alg, prefix))) {
          if (name.startsWith('.')) continue;
          const digest = `${alg}:${name}`;
          try {
            parseDigest(digest);
            const s = await stat(join(base, alg, prefix, name));
            out.push({ digest: digest as Digest, size: s.size, mtimeMs: s.mtimeMs });
          } catch {
            // Not an entry of ours.
          }
        }
      }
    }
    return out.sort((a, b) => a.digest.localeCompare(b.digest));
  }

  /** Removes entries (all, or those last written before `olderThanMs`) and stale temp files. */
  async prune(opts: { olderThanMs?: number } = {}): Promise<{ removed: number; bytes: number }> {
    let removed = 0;
    let bytes = 0;
    const cutoff = opts.olderThanMs === undefined ? Number.POSITIVE_INFINITY : Date.now() - opts.olderThanMs;
    for (const e of await this.list()) {
      if (e.mtimeMs < cutoff) {
        await rm(this.pathFor(e.digest), { force: true });
        removed++;
        bytes += e.size;
      }
    }
    return { removed, bytes };
  }
}

/**
 * The same memory under a new ArrayBuffer (a move, no copy: V8 hands the backing store over);
 * the old one, and every view of it, is detached. (`transfer` is ES2024, above the lib level.)
 */
function moveOn(memory: ArrayBuffer): ArrayBuffer {
  return (memory as ArrayBuffer & { transfer(): ArrayBuffer }).transfer();
}

async function fileIdentity(path: string): Promise<string | undefined> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return undefined;
  }
}

async function safeReaddir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/**
 * True for the error of a cache entry found corrupt while it was read. The entry is gone by then,
 * so the same read, tried again, fetches the blob afresh.
 */
export function isCorruptCacheEntry(err: unknown): boolean {
  return (
    hasCode(err, ErrorCode.DigestMismatch, ErrorCode.SizeMismatch) && (err as LadingError).temporary === true
  );
}

/** Raised when a cache root cannot be used. */
export function cacheError(root: string, err: unknown): LadingError {
  return new LadingError(ErrorCode.Io, `cannot use cache ${root}: ${(err as Error)?.message ?? err}`, {
    path: root,
  });
}
