import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type Digest, digestAlgorithm } from './digest.ts';

export interface VerifyOptions {
  /** Expected digest of the whole stream. */
  digest: Digest;
  /** Expected size in bytes, when known. More bytes than this fail at once. */
  size?: number;
  /** Where the bytes come from, for error messages (a redacted URL or a path). */
  source?: string;
  /** Called with the error, before the stream fails with it (to clean up or annotate it). */
  onFailure?: (err: LadingError) => void;
  /** Bytes already hashed (resume): the hash state to continue from and how many bytes it covered. */
  resume?: { hash: Hash; bytes: number };
}

/**
 * Marks a stream that checks its own bytes against this digest and errors instead of ending when
 * they do not match (a VerifyStream, a registry blob reader): consumers need not hash it again.
 */
export const VERIFIED_DIGEST: unique symbol = Symbol.for('lading.verified-digest');

/**
 * A pass-through stream that hashes every chunk and, at the end, fails with a size error and then
 * a digest error *before* the consumer sees `end`. Data beyond `size` fails immediately, so a
 * hostile server cannot make us read forever.
 */
export class VerifyStream extends Transform {
  readonly expected: Digest;
  readonly expectedSize: number | undefined;
  readonly source: string | undefined;
  #hash: Hash;
  #bytes: number;
  readonly #onFailure: ((err: LadingError) => void) | undefined;

  constructor(opts: VerifyOptions) {
    super();
    this.#onFailure = opts.onFailure;
    this.expected = opts.digest;
    (this as unknown as Record<symbol, Digest>)[VERIFIED_DIGEST] = opts.digest;
    this.expectedSize = opts.size;
    this.source = opts.source;
    this.#hash = opts.resume?.hash ?? createHash(digestAlgorithm(opts.digest));
    this.#bytes = opts.resume?.bytes ?? 0;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** A copy of the running hash state (to resume after a broken connection). */
  snapshot(): { hash: Hash; bytes: number } {
    return { hash: this.#hash.copy(), bytes: this.#bytes };
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.expectedSize !== undefined && this.#bytes > this.expectedSize) {
      cb(this.#failed(sizeError(this.expected, this.expectedSize, this.#bytes, this.source, 'more than')));
      return;
    }
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.#bytes !== this.expectedSize) {
      cb(this.#failed(sizeError(this.expected, this.expectedSize, this.#bytes, this.source, 'only')));
      return;
    }
    const found = `${digestAlgorithm(this.expected)}:${this.#hash.digest('hex')}`;
    if (found !== this.expected) {
      cb(this.#failed(digestMismatch(this.expected, found, this.#bytes, this.source)));
      return;
    }
    cb();
  }

  #failed(err: LadingError): LadingError {
    this.#onFailure?.(err);
    return err;
  }
}

export function digestMismatch(expected: string, found: string, bytes: number, source?: string): LadingError {
  return new LadingError(
    ErrorCode.DigestMismatch,
    `digest mismatch${source ? ` for ${source}` : ''}: expected ${expected}, got ${found} (${bytes} bytes read)`,
    { expected, found, url: source },
  );
}

function sizeError(
  digest: Digest,
  size: number,
  got: number,
  source: string | undefined,
  how: string,
): LadingError {
  return new LadingError(
    ErrorCode.SizeMismatch,
    `size mismatch for ${digest}${source ? ` from ${source}` : ''}: expected ${size} bytes, got ${how} ${got}`,
    { expected: size, found: got, url: source },
  );
}

/** Checks bytes already in memory against a digest (and size), with the same errors as the stream. */
export function verifyBytes(data: Uint8Array, digest: Digest, size?: number, source?: string): void {
  if (size !== undefined && data.length !== size) {
    throw sizeError(digest, size, data.length, source, data.length > size ? 'more than' : 'only');
  }
  const found = `${digestAlgorithm(digest)}:${createHash(digestAlgorithm(digest)).update(data).digest('hex')}`;
  if (found !== digest) throw digestMismatch(digest, found, data.length, source);
}
