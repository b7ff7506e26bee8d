import { createHash } from 'node:crypto';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** A validated content digest, `algorithm:hex` (e.g. `sha256:e3b0…`). */
export type Digest = string & { readonly __digest: unique symbol };

/** Algorithms lading can verify, with the length of their hex encoding. */
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/**
 * Parses and validates a digest string. Only `sha256` and `sha512` with lowercase hex of the
 * exact length are accepted, so a digest can be used safely in URLs and file names
 * (CVE-2024-3727).
 */
export function parseDigest(input: string, what = 'digest'): Digest {
  const m = DIGEST_RE.exec(input);
  if (!m) {
    throw new LadingError(
      ErrorCode.BadDigest,
      `invalid ${what} ${JSON.stringify(input)}: expected algorithm:hex`,
      {
        found: input,
      },
    );
  }
  const [, algorithm, hex] = m as unknown as [string, string, string];
  const len = HEX_LENGTH[algorithm];
  if (len === undefined) {
    throw new LadingError(
      ErrorCode.BadDigest,
      `invalid ${what} ${JSON.stringify(input)}: unsupported algorithm ${JSON.stringify(algorithm)} (sha256 or sha512)`,
      { found: input },
    );
  }
  if (hex.length !== len || !/^[0-9a-f]+$/.test(hex)) {
    throw new LadingError(
      ErrorCode.BadDigest,
      `invalid ${what} ${JSON.stringify(input)}: ${algorithm} needs ${len} lowercase hex characters`,
      { found: input },
    );
  }
  return input as Digest;
}

/** True when `input` is a valid digest (see {@link parseDigest}). */
export function isDigest(input: string): input is Digest {
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

/** The algorithm part of a digest. */
export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.slice(0, d.indexOf(':')) as 'sha256' | 'sha512';
}

/** The hex part of a digest. */
export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

/** sha256 digest of bytes. */
export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** Digest of `data` with the same algorithm as `like`. */
export function digestLike(like: Digest, data: Uint8Array | string): Digest {
  const alg = digestAlgorithm(like);
  return `${alg}:${createHash(alg).update(data).digest('hex')}` as Digest;
}
