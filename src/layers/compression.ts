import { PassThrough, type Readable, Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';

export type Compression = 'gzip' | 'zstd' | 'none';

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
export function decompress(source: Readable, opts: { onDetect?: (c: Compression) => void } = {}): Readable {
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
  const start = (): void => {
    const c = detectCompression(head);
    opts.onDetect?.(c);
    if (c === 'none') {
      target = out;
      sniff.pipe(out);
      return;
    }
    const z =
      c === 'gzip' ? createGunzip({ chunkSize: 1 << 17 }) : createZstdDecompress({ chunkSize: 1 << 17 });
    z.on('error', (err) => out.destroy(err));
    target = z;
    sniff.pipe(z).pipe(out);
  };
  source.on('error', (err) => out.destroy(err));
  sniff.on('error', (err) => out.destroy(err));
  source.pipe(sniff);
  out.on('close', () => {
    if (!source.readableEnded) source.destroy();
  });
  return out;
}
