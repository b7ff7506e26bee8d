/**
 * The gzip member header (RFC 1952 section 2.3), read by lading so that zlib can inflate the
 * deflate data raw: zlib's gzip mode also computes a CRC-32 of every inflated byte (~40 ms per
 * 200 MiB here, as long as the inflating itself), which the layer's diff_id (a sha256 of the same
 * bytes, always checked) makes redundant. The checks are zlib's, with its messages.
 */

/** A header longer than this (a file name or comment without end) is refused: zlib has no bound. */
export const GZIP_HEADER_MAX = 1 << 20;

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;
const FRESERVED = 0xe0;

/** A gzip header zlib would refuse, with zlib's words for it. */
export class GzipHeaderError extends Error {}

/**
 * The length of the gzip member header at the start of `b`, or -1 when `b` ends before it does.
 * Throws {@link GzipHeaderError} for what is not a gzip header (as soon as the bytes show it).
 */
export function gzipHeaderLength(b: Uint8Array): number {
  if ((b.length > 0 && b[0] !== 0x1f) || (b.length > 1 && b[1] !== 0x8b))
    throw new GzipHeaderError('incorrect header check');
  if (b.length > 2 && b[2] !== 8) throw new GzipHeaderError('unknown compression method');
  if (b.length > 3 && (b[3]! & FRESERVED) !== 0) throw new GzipHeaderError('unknown header flags set');
  if (b.length < 10) return -1;
  const flags = b[3]!;
  let pos = 10;
  if (flags & FEXTRA) {
    if (b.length < pos + 2) return -1;
    pos += 2 + (b[pos]! | (b[pos + 1]! << 8));
  }
  for (const field of [FNAME, FCOMMENT]) {
    if (!(flags & field)) continue;
    if (pos >= b.length) return -1;
    const end = b.indexOf(0, pos);
    if (end < 0) return -1;
    pos = end + 1;
  }
  if (flags & FHCRC) pos += 2;
  return pos <= b.length ? pos : -1;
}
