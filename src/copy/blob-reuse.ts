import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobInfoCache } from '../cache/index.ts';
import type { Digest } from '../digest/index.ts';
import type { BlobSink, Descriptor, ExistingLayer, ImageSource, ReuseOutcome } from '../image/index.ts';
import { type Compression, decompress } from '../layers/index.ts';
import { sameForm } from './layer-bytes.ts';
import { layerCompression } from './recompress.ts';
import { sha256Tap } from './sha256-tap.ts';

/** The sha256 of a layer's uncompressed bytes (gzip, zstd or plain, by magic bytes). */
export async function uncompressedDigest(compressed: Readable, signal?: AbortSignal): Promise<Digest> {
  const tap = sha256Tap();
  await pipeline(
    decompress(compressed),
    tap,
    async (s: AsyncIterable<Buffer>) => {
      for await (const _ of s);
    },
    { signal },
  );
  return tap.digest();
}

/** The destination's existing layers, read once per sink (best effort: none when unreadable). */
const existingBySink = new WeakMap<BlobSink, Promise<ExistingLayer[]>>();
function existingLayers(dst: BlobSink, signal?: AbortSignal): Promise<ExistingLayer[]> {
  let p = existingBySink.get(dst);
  if (!p) {
    p = dst.existingLayers ? dst.existingLayers(signal).catch(() => []) : Promise.resolve([]);
    existingBySink.set(dst, p);
  }
  return p;
}

/**
 * Everything a copy does to avoid sending a blob, in one place: the sink's one reuse call (it is
 * there; a mount from the source or from a repository the blob-info cache saw it in), and reuse of
 * a layer by its uncompressed digest.
 *
 * Reuse by diff_id trusts only what lading verified itself: a pair in the blob-info cache (written
 * only with digests lading computed), or a destination layer whose uncompressed bytes were hashed
 * here and matched. A config at the destination *claiming* a diff_id is never enough: whoever can
 * push to the destination tag wrote it.
 */
export class BlobReuse {
  readonly #dst: BlobSink;
  readonly #src: ImageSource;
  readonly #info: BlobInfoCache | undefined;
  readonly #signal: AbortSignal | undefined;
  /** A compression asked for explicitly (with its level): only that exact form may be reused. */
  readonly #asked: { compress?: Compression; compressLevel?: number };

  constructor(
    dst: BlobSink,
    src: ImageSource,
    info: BlobInfoCache | undefined,
    opts: { signal?: AbortSignal; compress?: Compression; compressLevel?: number } = {},
  ) {
    this.#dst = dst;
    this.#src = src;
    this.#info = info;
    this.#signal = opts.signal;
    this.#asked = { compress: opts.compress, compressLevel: opts.compressLevel };
  }

  /** Whether existing destination layers are worth looking at for a layer about to be compressed. */
  get looksByDiffId(): boolean {
    return Boolean(this.#dst.existingLayers || this.#info);
  }

  /**
   * Makes `d` present at the destination without sending it, when the sink can; `fromSource` false
   * for a blob the copy made (the source repository does not have it).
   */
  async byDigest(d: Descriptor, fromSource = true): Promise<ReuseOutcome | undefined> {
    const outcome = await this.#dst.reuseBlob(d, {
      mountFrom: await this.#knownRepositories(d.digest),
      fromSource,
      signal: this.#signal,
    });
    if (outcome) await this.remember(d.digest);
    return outcome;
  }

  /**
   * A blob at the destination holding the uncompressed layer `diffId` compressed as `to`: from
   * lading's verified pairs, else from the destination's existing layers after hashing their bytes.
   */
  async byDiffId(
    diffId: Digest,
    to: Compression,
    mediaType: string,
  ): Promise<{ descriptor: Descriptor; outcome: ReuseOutcome } | undefined> {
    if (to === 'none') return undefined;
    // The form compressing now would make (same compression, same level): reusing another would
    // make the result depend on what is there.
    const forms = ((await this.#info?.compressedOf(diffId).catch(() => [])) ?? []).filter((c) =>
      sameForm(c, to, this.#asked.compressLevel),
    );
    for (const c of forms) {
      const descriptor: Descriptor = { mediaType, digest: c.digest, size: c.size };
      const outcome = await this.byDigest(descriptor, false);
      if (outcome) return { descriptor, outcome };
    }
    for (const e of await existingLayers(this.#dst, this.#signal)) {
      if (e.diffId !== diffId || layerCompression(e.descriptor.mediaType) !== to) continue;
      // Asked for a compression (and level), only a layer known to be that form will do.
      if (this.#asked.compress !== undefined && !forms.some((c) => c.digest === e.descriptor.digest))
        continue;
      if (!(await this.#verified(e))) continue;
      const descriptor: Descriptor = { mediaType, digest: e.descriptor.digest, size: e.descriptor.size };
      const outcome = await this.byDigest(descriptor, false);
      if (outcome) return { descriptor, outcome };
    }
    return undefined;
  }

  /** Whether `e`'s bytes really decompress to the diff_id its config claims (hashed once per blob). */
  async #verified(e: ExistingLayer): Promise<boolean> {
    const known = await this.#info?.uncompressedOf(e.descriptor.digest).catch(() => undefined);
    if (known !== undefined) return known === e.diffId;
    let actual: Digest;
    try {
      actual = await uncompressedDigest(await e.open(this.#signal), this.#signal);
    } catch (err) {
      if (this.#signal?.aborted) throw err;
      return false;
    }
    const c = layerCompression(e.descriptor.mediaType);
    if (c === 'gzip' || c === 'zstd')
      await this.recordPair(e.descriptor.digest, e.descriptor.size, actual, c);
    return actual === e.diffId;
  }

  /** Records a compressed↔uncompressed pair that lading computed (never one it was told). */
  async recordPair(
    compressed: Digest,
    size: number,
    diffId: Digest,
    to: Compression,
    level?: number,
  ): Promise<void> {
    if (to === 'none') return;
    await this.#info?.addPair(compressed, size, diffId, to, level).catch(() => {});
  }

  /** Records where a blob now is (destination and source repositories), for later mounts. */
  async remember(digest: Digest): Promise<void> {
    const info = this.#info;
    if (!info) return;
    if (this.#dst.location) await info.addLocation(digest, this.#dst.location).catch(() => {});
    if (this.#src.location) await info.addLocation(digest, this.#src.location).catch(() => {});
  }

  /** Other repositories of the destination's registry the blob-info cache saw `digest` in. */
  async #knownRepositories(digest: Digest): Promise<string[]> {
    const loc = this.#dst.location;
    if (!this.#info || !loc) return [];
    const seen = await this.#info.locations(digest).catch(() => []);
    return seen
      .filter((l) => l.registry === loc.registry && l.repository !== loc.repository)
      .map((l) => l.repository);
  }
}
