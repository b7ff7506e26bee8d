import { createHash } from 'node:crypto';
import { type Digest, digestAlgorithm, digestHex } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { fromNix32, nix32Length, toNix32 } from './base32.ts';

export type NixHashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';
export type NixHashFormat = 'sri' | 'nix32' | 'base16' | 'base64';

/** A hash as Nix holds it. */
export interface NixHash {
  algo: NixHashAlgo;
  bytes: Buffer;
}

const SIZES: Record<NixHashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

function bad(input: string, why: string): LadingError {
  return new LadingError(ErrorCode.BadArgument, `invalid Nix hash ${JSON.stringify(input)}: ${why}`, {
    found: input,
  });
}

function isAlgo(s: string): s is NixHashAlgo {
  return s in SIZES;
}

function decode(input: string, algo: NixHashAlgo, body: string, sri: boolean): NixHash {
  const size = SIZES[algo];
  if (!sri && body.length === size * 2 && /^[0-9a-fA-F]+$/.test(body))
    return { algo, bytes: Buffer.from(body, 'hex') };
  if (!sri && body.length === nix32Length(size)) {
    try {
      return { algo, bytes: fromNix32(body, size) };
    } catch (err) {
      throw bad(input, (err as Error).message);
    }
  }
  if (body.length === Math.ceil(size / 3) * 4 && /^[A-Za-z0-9+/]+=*$/.test(body)) {
    const bytes = Buffer.from(body, 'base64');
    if (bytes.length === size && bytes.toString('base64') === body) return { algo, bytes };
  }
  throw bad(input, `not a ${sri ? 'base64' : 'hex, nix32 or base64'} ${algo} hash`);
}

/**
 * Parses any hash string Nix accepts: SRI (`sha256-…=`), `algo:hex|nix32|base64`, or a bare
 * hex/nix32/base64 string when `algoHint` is given.
 */
export function parseNixHash(input: string, algoHint?: NixHashAlgo): NixHash {
  const dash = /^(md5|sha1|sha256|sha512)-(.*)$/.exec(input);
  if (dash) return decode(input, dash[1] as NixHashAlgo, dash[2]!, true);
  const colon = /^([a-z0-9]+):(.*)$/.exec(input);
  if (colon) {
    if (!isAlgo(colon[1]!)) throw bad(input, `unknown algorithm ${JSON.stringify(colon[1])}`);
    return decode(input, colon[1], colon[2]!, false);
  }
  if (!algoHint) throw bad(input, 'no algorithm given (use SRI or algo:hash)');
  return decode(input, algoHint, input, false);
}

export function toSri(h: NixHash): string {
  return `${h.algo}-${h.bytes.toString('base64')}`;
}

export function toHex(h: NixHash): string {
  return h.bytes.toString('hex');
}

export function toBase64(h: NixHash): string {
  return h.bytes.toString('base64');
}

export { toNix32 };

/** Prints a hash in one of Nix's formats (`--to-sri`, `--to-base32`, …). */
export function formatNixHash(
  h: NixHash,
  format: NixHashFormat,
  opts: { includeAlgo?: boolean } = {},
): string {
  if (format === 'sri') return toSri(h);
  const body = format === 'nix32' ? toNix32(h.bytes) : format === 'base16' ? toHex(h) : toBase64(h);
  return opts.includeAlgo ? `${h.algo}:${body}` : body;
}

/** The NixHash of an OCI digest (`sha256:<hex>` → sha256 bytes). */
export function fromDigest(d: Digest): NixHash {
  return { algo: digestAlgorithm(d), bytes: Buffer.from(digestHex(d), 'hex') };
}

/** sha256 of bytes as a NixHash. */
export function sha256Hash(data: Uint8Array | string): NixHash {
  return { algo: 'sha256', bytes: createHash('sha256').update(data).digest() };
}
