import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createZstdCompress } from 'node:zlib';
import type { Digest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type Descriptor, MediaType } from '../image/index.ts';
import { type Compression, decompress, parallelGzip } from '../layers/index.ts';
import { makeTempDir } from '../util/index.ts';
import { sha256Tap } from './sha256-tap.ts';

/** The compression a layer media type declares, or undefined for a type that is not a layer tar. */
export function layerCompression(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MediaType.OciLayer:
    case MediaType.DockerLayer:
      return 'none';
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
    case MediaType.DockerLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

/** The layer media type for `compression` in the manifest family of `manifestMediaType`. */
export function layerMediaType(manifestMediaType: string, compression: Compression, where: string): string {
  if (manifestMediaType === MediaType.DockerManifest) {
    if (compression === 'zstd') {
      throw new LadingError(
        ErrorCode.BadArgument,
        `${where}: Docker schema 2 manifests cannot hold zstd layers; add --format oci to compress with zstd`,
      );
    }
    return compression === 'gzip' ? MediaType.DockerLayerGzip : MediaType.DockerLayer;
  }
  return compression === 'gzip'
    ? MediaType.OciLayerGzip
    : compression === 'zstd'
      ? MediaType.OciLayerZstd
      : MediaType.OciLayer;
}

/**
 * `source` (gzip, zstd or plain, by magic bytes) decompressed and compressed again as `to`. The
 * uncompressed bytes pass through `tap` when given (to hash them: the layer's real diff_id).
 */
export function recompressStream(
  source: Readable,
  to: Compression,
  level: number | undefined,
  tap?: Transform,
): Readable {
  let plain = decompress(source);
  if (tap) {
    const d = plain;
    d.once('error', (err) => tap.destroy(err));
    plain = d.pipe(tap);
  }
  if (to === 'none') return plain;
  // gzip is compressed on several threads (in 1 MiB blocks, deterministic); zstd on one.
  if (to === 'gzip') return parallelGzip(plain, { level: level ?? 6 });
  const z = createZstdCompress({
    chunkSize: 1 << 17,
    params: level === undefined ? {} : { [constants.ZSTD_c_compressionLevel]: level },
  });
  plain.once('error', (err) => z.destroy(err));
  return plain.pipe(z);
}

/** A re-encoded layer staged in a temporary file; its digest and size are known. */
export interface StagedBlob {
  descriptor: Descriptor;
  /** The sha256 of the uncompressed bytes, computed on the way. */
  diffId: Digest;
  open(): Promise<Readable>;
}

/**
 * A directory of staged (recompressed) blobs, removed by {@link Staging.close}. Blobs are staged so
 * that their digests are known before the manifest that names them is written.
 */
export class Staging {
  #dir: Promise<string> | undefined;
  #n = 0;

  #root(): Promise<string> {
    this.#dir ??= makeTempDir(tmpdir(), 'recompress');
    return this.#dir;
  }

  /**
   * Decompresses `source` (gzip, zstd or plain, by magic bytes) and compresses it as `to`, hashing
   * the output while it is written.
   */
  async recompress(
    source: Readable,
    from: Descriptor,
    to: Compression,
    mediaType: string,
    level: number | undefined,
    signal?: AbortSignal,
  ): Promise<StagedBlob> {
    const path = join(await this.#root(), `blob-${this.#n++}`);
    const hash = createHash('sha256');
    const plainTap = sha256Tap();
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline([recompressStream(source, to, level, plainTap), tap, createWriteStream(path)], {
        signal,
      });
    } catch (err) {
      await rm(path, { force: true });
      if (err instanceof LadingError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new LadingError(
        ErrorCode.Io,
        `recompressing layer ${from.digest} into ${path}: ${e.message}`,
        { path },
        { cause: err },
      );
    }
    const digest = `sha256:${hash.digest('hex')}` as Digest;
    // Foreign-layer URLs point at the old bytes, so they are dropped.
    const descriptor: Descriptor = { mediaType, digest, size };
    if (from.annotations) descriptor.annotations = from.annotations;
    return {
      descriptor,
      diffId: plainTap.digest(),
      open: async () => createReadStream(path, { highWaterMark: 1 << 20 }),
    };
  }

  async close(): Promise<void> {
    if (this.#dir) await rm(await this.#dir, { recursive: true, force: true });
  }
}
