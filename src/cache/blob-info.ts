import type { Digest } from '../digest/index.ts';
import { IndexStore } from './index-store.ts';

/** A registry repository a blob was seen in. */
export interface BlobLocation {
  registry: string;
  repository: string;
}

/** A compressed form of an uncompressed layer. */
export interface CompressedForm {
  digest: Digest;
  size: number;
  compression: 'gzip' | 'zstd';
  /** The level it was made at (absent in records of older versions: not reused then). */
  level?: number;
}

const MAX = 16;

/**
 * What lading learnt about blobs in earlier runs (as containers/image's blob-info cache): the
 * registry repositories each blob was seen in (for cross-repository mounts) and which compressed
 * digests hold which uncompressed layer (for reuse by diff_id). Hints only: everything found here is
 * checked against the registry before it is relied on. Records live in the cache's index store.
 */
export class BlobInfoCache {
  readonly #store: IndexStore;

  constructor(root: string) {
    this.#store = new IndexStore(root);
  }

  async locations(digest: Digest): Promise<BlobLocation[]> {
    return (await this.#store.get<BlobLocation[]>(`blob-location:${digest}`)) ?? [];
  }

  /** Records that `digest` is in `location` (most recent first, a few kept). */
  async addLocation(digest: Digest, location: BlobLocation): Promise<void> {
    const have = await this.locations(digest);
    const same = (l: BlobLocation): boolean =>
      l.registry === location.registry && l.repository === location.repository;
    if (same(have[0] ?? { registry: '', repository: '' })) return;
    const next = [
      { registry: location.registry, repository: location.repository },
      ...have.filter((l) => !same(l)),
    ];
    await this.#store.set(`blob-location:${digest}`, next.slice(0, MAX));
  }

  async uncompressedOf(digest: Digest): Promise<Digest | undefined> {
    return this.#store.get<Digest>(`blob-uncompressed:${digest}`);
  }

  async compressedOf(diffId: Digest): Promise<CompressedForm[]> {
    return (await this.#store.get<CompressedForm[]>(`blob-compressed:${diffId}`)) ?? [];
  }

  /** Records that `compressed` decompresses to `diffId`. */
  async addPair(
    compressed: Digest,
    size: number,
    diffId: Digest,
    compression: 'gzip' | 'zstd',
    level?: number,
  ): Promise<void> {
    if (compressed === diffId) return;
    if ((await this.uncompressedOf(compressed)) !== diffId)
      await this.#store.set(`blob-uncompressed:${compressed}`, diffId);
    const have = await this.compressedOf(diffId);
    if (have.some((c) => c.digest === compressed && c.level === level)) return;
    const form: CompressedForm = { digest: compressed, size, compression };
    if (level !== undefined) form.level = level;
    await this.#store.set(
      `blob-compressed:${diffId}`,
      [form, ...have.filter((c) => c.digest !== compressed)].slice(0, MAX),
    );
  }
}
