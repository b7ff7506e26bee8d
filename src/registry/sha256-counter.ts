import { createHash } from 'node:crypto';
import { type Readable, Transform } from 'node:stream';
import type { Digest } from '../digest/index.ts';

/**
 * `source` passed through a transform that counts and reports its bytes, and hashes them unless
 * `hash` is false (a blob of known digest: the registry checks it).
 */
export function sha256Counter(
  source: Readable,
  onProgress?: (bytes: number) => void,
  opts: { hash?: boolean } = {},
): { stream: Readable; digest(): Digest; size(): number } {
  const hash = opts.hash === false ? undefined : createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash?.update(chunk);
      size += chunk.length;
      onProgress?.(chunk.length);
      cb(null, chunk);
    },
  });
  source.once('error', (err) => tap.destroy(err));
  return {
    stream: source.pipe(tap),
    digest: () => `sha256:${hash?.digest('hex') ?? ''}` as Digest,
    size: () => size,
  };
}
