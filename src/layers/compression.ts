import { PassThrough, type Readable, Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { type Digest, VerifyStream } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';

export type Compression = 'gzip' | 'zstd' | 'none';

/**
 * Output block of the decompressors. zlib's default (16 KiB) or 128 KiB makes inflating a
 * 50 MiB layer take 55-75 ms on this machine; 512 KiB takes ~30 ms (fewer thread hand-offs).
 */
export const INFLATE_CHUNK = 512 * 1024;

/** Detects compression from the first bytes (gzip 1f 8b, zstd 28 b5 2f fd), not the media type. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd)
    return 'zstd';
  return 'none';
}

/**
 * Decompresses a layer stream, choosing gzip, zstd or nothing from its first bytes. Errors of the
 * source (a digest mismatch raised at its end) reach the output.
 */
export function decompress(
  source: Readable,
  opts: {
    onDetect?: (c: Compression) => void;
    what?: string;
    /** The uncompressed digest (diff_id) the config gives: checked before the output ends. */
    diffId?: Digest;
  } = {},
): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let head = Buffer.alloc(0);
  let target: NodeJS.WritableStream | undefined;
  const sniff = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (target) {
        cb(null, chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      if (head.length < 4) {
        cb();
        return;
      }
      start();
      cb(null, head);
    },
    flush(cb) {
      if (!target) {
        start();
        if (head.length) this.push(head);
      }
      cb();
    },
  });
  // With a diff_id, the uncompressed bytes pass a verifier that fails (E_DIGEST_MISMATCH) instead
  // of ending when they hash to something else.
  let tail: NodeJS.WritableStream = out;
  if (opts.diffId) {
    const v = new VerifyStream({
      digest: opts.diffId,
      source: `the uncompressed ${opts.what ?? 'layer'} (its diff_id in the config)`,
    });
    v.on('error', (err) => out.destroy(err));
    v.pipe(out);
    tail = v;
  }
  const start = (): void => {
    const c = detectCompression(head);
    opts.onDetect?.(c);
    if (c === 'none') {
      target = tail;
      sniff.pipe(tail);
      return;
    }
    const z =
      c === 'gzip'
        ? createGunzip({ chunkSize: INFLATE_CHUNK })
        : createZstdDecompress({ chunkSize: INFLATE_CHUNK });
    z.on('error', (err) => out.destroy(decompressError(c, err, opts.what)));
    target = z;
    sniff.pipe(z).pipe(tail);
  };
  source.on('error', (err) => out.destroy(err));
  sniff.on('error', (err) => out.destroy(err));
  source.pipe(sniff);
  out.on('close', () => {
    if (!source.readableEnded) source.destroy();
  });
  return out;
}

/**
 * Decompresses chunks that live in a two-buffer ring (each valid until the next-but-one is asked
 * for, as `BlobCache.chunks` gives them): the next chunk is read while the decompressor works on
 * this one, and a buffer is reused only after the decompressor has consumed it. Gzip, zstd or
 * nothing, from the first bytes. Source errors reach the output.
 */
export function decompressRing(source: AsyncIterable<Buffer>): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const it = source[Symbol.asyncIterator]();
  const pump = async (): Promise<void> => {
    const first = await it.next();
    const kind = first.done ? 'none' : detectCompression(first.value);
    const z =
      kind === 'gzip'
        ? createGunzip({ chunkSize: INFLATE_CHUNK })
        : kind === 'zstd'
          ? createZstdDecompress({ chunkSize: INFLATE_CHUNK })
          : undefined;
    if (!z) {
      // Passed through: the chunks must be copied out of the ring.
      for (let r = first; !r.done; r = await it.next()) {
        if (!out.write(Buffer.from(r.value))) await new Promise((res) => out.once('drain', res));
        if (out.destroyed) return;
      }
      out.end();
      return;
    }
    z.on('error', (err) => out.destroy(decompressError(kind, err)));
    z.pipe(out);
    out.once('close', () => {
      if (!z.destroyed) z.destroy();
    });
    const consumed: Promise<void>[] = [];
    const feed = (chunk: Buffer): void => {
      consumed.push(
        new Promise<void>((res, rej) => {
          z.write(chunk, (err) => (err ? rej(err) : res()));
        }),
      );
    };
    feed(first.value as Buffer);
    for (;;) {
      // The buffer the next read fills held the chunk before last: wait until it was consumed.
      if (consumed.length === 2) await consumed.shift();
      if (out.destroyed) return;
      const r = await it.next();
      if (r.done) break;
      feed(r.value);
    }
    await Promise.all(consumed);
    z.end();
  };
  pump()
    .catch((err) => out.destroy(err))
    // Closes the source (its file) however the pump ended.
    .finally(() => it.return?.(undefined)?.catch(() => {}));
  return out;
}

/** A decompressor's error (bad data) as a LadingError that says what could not be read. */
function decompressError(c: Compression, err: Error, what = `a ${c} layer`): LadingError {
  return new LadingError(
    ErrorCode.Archive,
    `cannot decompress ${what}: ${err.message} (damaged, or not ${c})`,
    {},
    { cause: err },
  );
}
