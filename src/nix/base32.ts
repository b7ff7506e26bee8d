import { ErrorCode, LadingError } from '../errors/index.ts';

/** Nix's base-32 alphabet (no e, o, u, t). */
export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

/** Length of the nix32 encoding of `bytes` bytes. */
export function nix32Length(bytes: number): number {
  return Math.floor((bytes * 8 - 1) / 5) + 1;
}

/** Encodes bytes as Nix base32 (as `printHash32`: last 5-bit group first, no padding). */
export function toNix32(bytes: Uint8Array): string {
  const len = nix32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = ((bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0)) & 31;
    out += NIX32_ALPHABET[c];
  }
  return out;
}

/** Decodes Nix base32 into `size` bytes; rejects bad characters and non-zero overflow bits. */
export function fromNix32(s: string, size: number): Buffer {
  if (s.length !== nix32Length(size)) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid nix32 string of length ${s.length}: ${size} bytes need ${nix32Length(size)} characters`,
    );
  }
  const out = Buffer.alloc(size);
  for (let n = 0; n < s.length; n++) {
    const c = s[s.length - n - 1]!;
    const digit = NIX32_ALPHABET.indexOf(c);
    if (digit === -1)
      throw new LadingError(
        ErrorCode.BadArgument,
        `invalid character ${JSON.stringify(c)} in nix32 string ${JSON.stringify(s)}`,
      );
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] = out[i]! | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1] = out[i + 1]! | carry;
    else if (carry)
      throw new LadingError(
        ErrorCode.BadArgument,
        `invalid nix32 string ${JSON.stringify(s)}: non-zero overflow`,
      );
  }
  return out;
}
