import { ErrorCode, LadingError } from '../errors/index.ts';
import type { Compression } from '../layers/index.ts';

/** How the two settings are named in messages (the CLI's flags, or the library's options). */
export interface CompressNames {
  format: string;
  level: string;
}

const OPTIONS: CompressNames = { format: 'compress', level: 'compressLevel' };

/**
 * Checks a compression level against its format (gzip 1–9, zstd 1–22) and returns it as a number.
 * `level` may be the text a user typed. The library's ImageCopier (so copyImage and createIndex)
 * checks its options with this, and the CLI its flags, so both refuse the same things with the
 * same E_BAD_ARGUMENT.
 */
export function checkCompressLevel(
  format: Compression | undefined,
  level: string | number | undefined,
  names: CompressNames = OPTIONS,
): number | undefined {
  if (level === undefined) return undefined;
  if (!format || format === 'none')
    throw new LadingError(ErrorCode.BadArgument, `${names.level} needs ${names.format} gzip or zstd`);
  const [lo, hi] = format === 'gzip' ? [1, 9] : [1, 22];
  const n = typeof level === 'number' ? level : /^\d{1,2}$/.test(level) ? Number(level) : Number.NaN;
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new LadingError(
      ErrorCode.BadArgument,
      `${names.level}: expected ${lo}-${hi} for ${format}, got ${JSON.stringify(level)}`,
    );
  return n;
}
