import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Digest } from '../digest/index.ts';
import { isDigest } from '../digest/index.ts';
import { writeFileAtomic } from '../util/index.ts';

/** Remembers layer digests by plan fingerprint, so an unchanged layer is not re-hashed. */
export interface LayerDigestCache {
  get(key: string): Promise<{ digest: Digest; size: number } | undefined>;
  set(key: string, value: { digest: Digest; size: number }): Promise<void>;
}

/** One small JSON file per fingerprint under `dir` (`$XDG_CACHE_HOME/lading/build-layers`). */
export class FileLayerDigestCache implements LayerDigestCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  #file(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  async get(key: string): Promise<{ digest: Digest; size: number } | undefined> {
    try {
      const v = JSON.parse(await readFile(this.#file(key), 'utf8')) as { digest?: unknown; size?: unknown };
      if (typeof v.digest === 'string' && isDigest(v.digest) && typeof v.size === 'number')
        return { digest: v.digest as Digest, size: v.size };
    } catch {
      // Missing or unreadable: hash again.
    }
    return undefined;
  }

  async set(key: string, value: { digest: Digest; size: number }): Promise<void> {
    try {
      const file = this.#file(key);
      await mkdir(dirname(file), { recursive: true });
      await writeFileAtomic(file, JSON.stringify(value), { fsync: false });
    } catch {
      // A cache that cannot be written only costs time.
    }
  }
}
