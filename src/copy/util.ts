import type { Readable } from 'node:stream';
import { Limits, readAtMost } from '../digest/index.ts';
import type { Descriptor } from '../image/index.ts';

export { mapLimit } from '../util/index.ts';

/** Reads a config-sized stream into memory. */
export function readAtMostFrom(stream: Readable, what: string): Promise<Buffer> {
  return readAtMost(stream, Limits.config, what);
}

/** `ds` without repeated digests (the first of each kept, in order). */
export function dedupe(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    if (seen.has(d.digest)) return false;
    seen.add(d.digest);
    return true;
  });
}
