import type { Readable } from 'node:stream';
import { Limits, readAtMost } from '../digest/index.ts';

export { mapLimit } from '../util/index.ts';

/** Reads a config-sized stream into memory. */
export function readAtMostFrom(stream: Readable, what: string): Promise<Buffer> {
  return readAtMost(stream, Limits.config, what);
}
