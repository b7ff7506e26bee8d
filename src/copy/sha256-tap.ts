import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { Digest } from '../digest/index.ts';

/** A transform that hashes what passes through; `digest()` once it has ended. */
export function sha256Tap(): Transform & { digest(): Digest } {
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  }) as Transform & { digest(): Digest };
  tap.digest = () => `sha256:${hash.digest('hex')}` as Digest;
  return tap;
}
