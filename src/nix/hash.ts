import { createHash } from 'node:crypto';
import { type Digest, digestAlgorithm, digestHex, parseDigest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { fromNix32, nix32Length, toNix32 } from './base32.ts';

export type NixHashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';
export type NixHashFormat = 'sri' | 'nix32' | 'base16' | 'base64';

/** A hash as Nix holds it. */
export interface NixHash {
  algo: NixHashAlgo;
  bytes: Buffer;
}

export const NIX_HASH_ALGOS: readonly NixHashAlgo[] = ['md5', 'sha1', 'sha256', 'sha512'];

const SIZES: Record<NixHashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/** Size in bytes of a hash of `algo`. */
export function hashSize(algo: NixHashAlgo): number {
  return SIZES[algo];
}

function bad(input: string, why: string): LadingError {
  return new LadingError(ErrorCode.BadArgument, `invalid Nix hash ${JSON.stringify(input)}: ${why}`, {
    found: input,
  });
}

function isAlgo(s: string): s is NixHashAlgo {
  return Object.hasOwn(SIZES, s);
}

const BASE64 = /^[A-Za-z0-9+/]*$/;

function decodeBase64(body: string, size: number, sri: boolean): Buffer | undefined {
  const padded = Math.ceil(size / 3) * 4;
  const unpadded = Math.ceil((size * 4) / 3);
  // SRI may drop the `=` padding (Nix's decoder stops at the first `=`); `algo:` needs the padded length.
  const core = body.replace(/=+$/, '');
  const ok = body.length === padded || (sri && body.length === unpadded);
  if (!ok || core.length !== unpadded || !BASE64.test(core)) return undefined;
  const bytes = Buffer.from(core, 'base64');
  return bytes.length === size ? bytes : undefined;
}

function decode(input: string, algo: NixHashAlgo, body: string, sri: boolean): NixHash {
  const size = SIZES[algo];
  if (!sri && body.length === size * 2) {
    if (!/^[0-9a-fA-F]+$/.test(body)) throw bad(input, `not a base16 ${algo} hash`);
    return { algo, bytes: Buffer.from(body, 'hex') };
  }
  if (!sri && body.length === nix32Length(size)) {
    try {
      return { algo, bytes: fromNix32(body, size) };
    } catch (err) {
      throw bad(input, (err as Error).message);
    }
  }
  const bytes = decodeBase64(body, size, sri);
  if (bytes) return { algo, bytes };
  throw bad(
    input,
    sri
      ? `not a base64 ${algo} hash`
      : `length ${body.length} fits no ${algo} encoding (base16 ${size * 2}, nix32 ${nix32Length(size)}, base64 ${Math.ceil(size / 3) * 4})`,
  );
}

/**
 * Parses any hash string Nix accepts (`Hash::parseAny`): SRI (`sha256-…=`), `algo:hex|nix32|base64`,
 * or a bare hex/nix32/base64 string (told apart by length) when `algoHint` is given. When both a
 * prefix and `algoHint` are present they must agree, as in Nix.
 */
export function parseNixHash(input: string, algoHint?: NixHashAlgo): NixHash {
  let algo: NixHashAlgo;
  let body: string;
  let sri = false;
  const colon = input.indexOf(':');
  const dash = input.indexOf('-');
  if (colon !== -1) {
    const name = input.slice(0, colon);
    if (!isAlgo(name)) throw bad(input, `unknown hash algorithm ${JSON.stringify(name)}`);
    algo = name;
    body = input.slice(colon + 1);
  } else if (dash !== -1) {
    const name = input.slice(0, dash);
    if (!isAlgo(name)) throw bad(input, `unknown hash algorithm ${JSON.stringify(name)}`);
    algo = name;
    body = input.slice(dash + 1);
    sri = true;
  } else {
    if (!algoHint) throw bad(input, 'no algorithm given (use SRI `sha256-…` or `sha256:…`)');
    algo = algoHint;
    body = input;
  }
  if (algoHint && algoHint !== algo) throw bad(input, `expected a ${algoHint} hash, got ${algo}`);
  return decode(input, algo, body, sri);
}

/** `sha256-<base64>` (Nix's `--to-sri`). */
export function toSri(h: NixHash): string {
  return `${h.algo}-${h.bytes.toString('base64')}`;
}

/** Lower-case hex (Nix's `base16`). */
export function toHex(h: NixHash): string {
  return h.bytes.toString('hex');
}

/** Padded base64 without the algorithm. */
export function toBase64(h: NixHash): string {
  return h.bytes.toString('base64');
}

/** Prints a hash in one of Nix's formats; `includeAlgo` adds `algo:` (SRI always has its prefix). */
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

/** The OCI digest (`sha256:<hex>`) of a sha256/sha512 NixHash. */
export function toDigest(h: NixHash): Digest {
  if (h.algo !== 'sha256' && h.algo !== 'sha512')
    throw new LadingError(ErrorCode.BadArgument, `a ${h.algo} hash cannot be an OCI digest: ${toSri(h)}`);
  return parseDigest(`${h.algo}:${toHex(h)}`);
}

/** Whether two hashes are the same algorithm and bytes. */
export function nixHashEquals(a: NixHash, b: NixHash): boolean {
  return a.algo === b.algo && a.bytes.equals(b.bytes);
}

/** sha256 of bytes as a NixHash. */
export function sha256Hash(data: Uint8Array | string): NixHash {
  return { algo: 'sha256', bytes: createHash('sha256').update(data).digest() };
}
