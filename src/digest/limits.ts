import { ErrorCode, LadingError } from '../errors/index.ts';

/** Caps on in-memory reads (containers/image iolimits, CVE-2020-1702). */
export const Limits = {
  manifest: 4 * 1024 * 1024,
  config: 4 * 1024 * 1024,
  token: 1024 * 1024,
  errorBody: 64 * 1024,
  archiveManifest: 1024 * 1024,
  authFile: 4 * 1024 * 1024,
} as const;

/**
 * Reads a whole stream into memory, failing with E_TOO_LARGE once more than `limit` bytes arrive.
 * `what` names the thing being read in the error.
 */
export async function readAtMost(
  stream: AsyncIterable<Uint8Array | string>,
  limit: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    total += buf.length;
    if (total > limit) {
      const s = stream as { destroy?: () => void };
      s.destroy?.();
      throw new LadingError(ErrorCode.TooLarge, `${what} is larger than the ${limit}-byte limit`, {
        expected: limit,
        found: total,
      });
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
