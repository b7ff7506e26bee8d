import { type Readable, Transform } from 'node:stream';
import type { BlobCache } from '../cache/index.ts';
import { type Digest, Limits } from '../digest/index.ts';
import { ErrorCode, hasCode, LadingError } from '../errors/index.ts';
import {
  type BlobSink,
  type Descriptor,
  detectMediaType,
  type ExistingLayer,
  type ImageSource,
  parseConfig,
  parseManifest,
  type RawManifest,
  type ReuseOutcome,
} from '../image/index.ts';
import type { Reference } from '../reference/index.ts';
import { type RegistryClient, readBlob, sendBlobRequestEarly } from '../registry/index.ts';
import { fileTail, layerSizeHintFrom } from './files.ts';

export interface RegistrySourceOptions {
  /** Verified blobs and manifests are read from and written to this cache. */
  cache?: BlobCache;
  /** Called for every blob byte fetched from the network (not from the cache). */
  onFetch?: (bytes: number) => void;
}

/**
 * A registry repository as an image source. Tags are resolved with HEAD; manifests and blobs
 * already in the cache are not fetched again, so a repeated command sends only that HEAD.
 */
export class RegistrySource implements ImageSource {
  readonly name: string;
  readonly client: RegistryClient;
  readonly ref: Reference;
  readonly location: { registry: string; repository: string };
  readonly #cache: BlobCache | undefined;
  readonly #onFetch: ((bytes: number) => void) | undefined;
  #top: Promise<RawManifest> | undefined;
  /** Bytes of blobs fetched over the network so far. */
  fetchedBytes = 0;

  constructor(client: RegistryClient, ref: Reference, opts: RegistrySourceOptions = {}) {
    this.client = client;
    this.ref = ref;
    this.name = `docker://${ref}`;
    this.location = { registry: ref.registry, repository: ref.repository };
    this.#cache = opts.cache;
    this.#onFetch = opts.onFetch;
  }

  topManifest(signal?: AbortSignal): Promise<RawManifest> {
    this.#top ??= this.#resolveTop(signal);
    return this.#top;
  }

  async #resolveTop(signal?: AbortSignal): Promise<RawManifest> {
    let digest = this.ref.digest;
    if (!digest && this.#cache) {
      const head = await this.client.headManifest(this.ref, signal);
      if (!head) {
        throw new LadingError(ErrorCode.NotFound, `manifest ${this.ref} not found in ${this.ref.registry}`, {
          ref: String(this.ref),
          registry: this.ref.registry,
        });
      }
      digest = head.digest;
    }
    if (digest) {
      const cached = await this.#cache?.read(digest, Limits.manifest);
      if (cached) return rawManifest(cached, digest);
    }
    const m = await this.client.getManifest(digest ? this.ref.withDigest(digest) : this.ref, signal);
    await this.#cache?.writeBytes(m.digest, m.bytes).catch(() => {});
    return {
      bytes: m.bytes,
      digest: m.digest,
      mediaType: detectMediaType(JSON.parse(m.bytes.toString('utf8')), m.contentType),
    };
  }

  async manifest(digest: Digest, signal?: AbortSignal): Promise<RawManifest> {
    const cached = await this.#cache?.read(digest, Limits.manifest);
    if (cached) return rawManifest(cached, digest);
    const m = await this.client.getManifest(this.ref.withDigest(digest), signal);
    await this.#cache?.writeBytes(m.digest, m.bytes).catch(() => {});
    return {
      bytes: m.bytes,
      digest: m.digest,
      mediaType: detectMediaType(JSON.parse(m.bytes.toString('utf8')), m.contentType),
    };
  }

  async blob(
    desc: Descriptor,
    opts: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
  ): Promise<Readable> {
    const cached = await this.#cache?.open(desc.digest, desc.size);
    if (cached) {
      if (!opts.onProgress) return cached;
      // Count without a 'data' listener, which would start the flow before the consumer pipes it.
      const onProgress = opts.onProgress;
      const counted = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          onProgress(chunk.length);
          cb(null, chunk);
        },
      });
      cached.once('error', (err) => counted.destroy(err));
      return cached.pipe(counted);
    }
    const stream = await this.client.openBlob(this.ref.repository, desc.digest, {
      size: desc.size,
      signal: opts.signal,
      onProgress: (n) => {
        this.fetchedBytes += n;
        this.#onFetch?.(n);
        opts.onProgress?.(n);
      },
    });
    return this.#cache ? this.#cache.tee(desc.digest, stream, desc.size) : stream;
  }

  /**
   * A blob's bytes, verified, to a synchronous consumer (each piece valid only during the call):
   * from the cache when it is there, else from the registry on a raw connection, written to the
   * cache on the way (committed once the digest checked out). Resolves when every byte has been
   * consumed and checked; the consumer must not act on the bytes before.
   */
  async readBlob(
    desc: Descriptor,
    onData: (piece: Buffer) => void,
    signal?: AbortSignal,
    onProgress?: (bytes: number) => void,
  ): Promise<void> {
    const cache = this.#cache;
    if (cache && (await cache.has(desc.digest, desc.size))) {
      await cache.forEachChunk(desc.digest, desc.size, (piece) => {
        onData(piece);
        onProgress?.(piece.length);
      });
      return;
    }
    const writer = await cache?.writer(desc.digest).catch(() => undefined);
    try {
      await this.client.limiter.run(() =>
        readBlob(this.client, this.ref.repository, desc.digest, {
          size: desc.size,
          signal,
          onProgress: (n) => {
            this.fetchedBytes += n;
            this.#onFetch?.(n);
            onProgress?.(n);
          },
          onData: (piece) => {
            writer?.write(piece);
            onData(piece);
            return undefined;
          },
        }),
      );
    } catch (err) {
      await writer?.abort();
      throw err;
    }
    await writer?.commit().catch(() => {});
  }

  /** `desc` will be read soon (readBlob): unless it is cached, its GET is sent now (a head start). */
  prepareBlob(desc: Descriptor, signal?: AbortSignal): void {
    const cache = this.#cache;
    sendBlobRequestEarly(this.client, this.ref.repository, desc.digest, {
      signal,
      skip: cache ? () => cache.has(desc.digest, desc.size) : undefined,
    });
  }

  async layerSizeHint(desc: Descriptor, signal?: AbortSignal): Promise<number | undefined> {
    return layerSizeHintFrom(desc, async (n) =>
      this.#cache && (await this.#cache.has(desc.digest, desc.size))
        ? fileTail(this.#cache.pathFor(desc.digest), n)
        : this.client.blobTail(this.ref.repository, desc.digest, n, signal),
    );
  }

  /** Makes sure a blob is in the cache (fetching and verifying it if not). Needs a cache. */
  async ensureCached(desc: Descriptor, signal?: AbortSignal): Promise<void> {
    const cache = this.#cache;
    if (!cache) throw new LadingError(ErrorCode.Internal, 'ensureCached needs a cache');
    if (await cache.has(desc.digest, desc.size)) return;
    const stream = await this.client.openBlob(this.ref.repository, desc.digest, {
      size: desc.size,
      signal,
      onProgress: (n) => {
        this.fetchedBytes += n;
        this.#onFetch?.(n);
      },
    });
    await cache.write(desc.digest, stream, desc.size, { verified: true });
  }

  async close(): Promise<void> {}
}

function rawManifest(bytes: Buffer, digest: Digest): RawManifest {
  return { bytes, digest, mediaType: detectMediaType(JSON.parse(bytes.toString('utf8'))) };
}

/** Other tags looked at when the destination tag is new (see existingLayers). */
const EXISTING_TAGS = 4;

export interface RegistrySinkOptions {
  /** Extra tags to push the top manifest under. */
  tags?: string[];
  /** The source repository, when it is on the same registry (enables cross-repository mounts). */
  mountFrom?: { registry: string; repository: string };
  /** Upload in chunks of this many bytes instead of one PUT. */
  chunkSize?: number;
}

/** A registry repository as a destination: HEAD to skip, mount when possible, upload, push manifests. */
export class RegistrySink implements BlobSink {
  readonly kind = 'blobs';
  readonly name: string;
  readonly client: RegistryClient;
  readonly ref: Reference;
  readonly acceptsIndex = true;
  readonly desiredLayerCompression = 'gzip' as const;
  readonly location: { registry: string; repository: string };
  readonly #opts: RegistrySinkOptions;

  constructor(client: RegistryClient, ref: Reference, opts: RegistrySinkOptions = {}) {
    this.client = client;
    this.ref = ref;
    this.name = `docker://${ref}`;
    this.location = { registry: ref.registry, repository: ref.repository };
    this.#opts = opts;
  }

  /** HEAD first; then a cross-repository mount from the source repository, then from `mountFrom`. */
  async reuseBlob(
    desc: Descriptor,
    opts: { mountFrom?: readonly string[]; fromSource?: boolean; signal?: AbortSignal } = {},
  ): Promise<ReuseOutcome | undefined> {
    const signal = opts.signal;
    const exists = await this.client.blobExists(this.ref.repository, desc.digest, signal).catch((err) => {
      // A registry that refuses HEAD for pull-less tokens: upload instead.
      if (hasCode(err, ErrorCode.Denied, ErrorCode.Unauthorized)) return false;
      throw err;
    });
    if (exists) return 'exists';
    const from = this.#opts.mountFrom;
    const repos = [...(opts.mountFrom ?? [])];
    if (opts.fromSource !== false && from && from.registry === this.ref.registry)
      repos.unshift(from.repository);
    for (const repo of new Set(repos)) {
      if (repo === this.ref.repository) continue;
      const mounted = await this.client
        .mountBlob(this.ref.repository, desc.digest, repo, signal)
        .catch(() => false);
      if (mounted) return 'mounted';
    }
    return undefined;
  }

  async existingLayers(signal?: AbortSignal): Promise<ExistingLayer[]> {
    if (!this.ref.tag || this.ref.digest) return [];
    const absent = (err: unknown) => {
      if (hasCode(err, ErrorCode.NotFound, ErrorCode.Denied, ErrorCode.Unauthorized)) return undefined;
      throw err;
    };
    // The tag's current image; a new tag looks at a few other tags of the repository instead
    // (pushing :v2 after :v1), so their layers are not uploaded again on a fresh machine.
    let tops = [await this.client.getManifest(this.ref, signal).catch(absent)];
    if (!tops[0]) {
      const tags = await this.client.listTags(this.ref.repository, { signal }).catch(absent);
      const others = (tags ?? []).filter((t) => t !== this.ref.tag);
      const picked = [...new Set([...others.filter((t) => t === 'latest'), ...others.slice(-EXISTING_TAGS)])];
      tops = await Promise.all(
        picked
          .slice(0, EXISTING_TAGS)
          .map((t) => this.client.getManifest(this.ref.withTag(t), signal).catch(() => undefined)),
      );
    }
    const images: { bytes: Buffer; mediaType: string }[] = [];
    const seen = new Set<string>();
    for (const top of tops) {
      if (!top || seen.has(top.digest)) continue;
      seen.add(top.digest);
      const parsed = parseManifest(top.bytes, top.contentType, `${this.name} (existing)`);
      if (parsed.kind === 'image') images.push({ bytes: top.bytes, mediaType: top.contentType });
      else if (parsed.kind === 'index') {
        // A bounded look at an existing index: its first images.
        for (const d of parsed.manifests.slice(0, 8)) {
          const m = await this.client.getManifest(this.ref.withDigest(d.digest), signal);
          images.push({ bytes: m.bytes, mediaType: m.contentType || d.mediaType });
        }
      }
    }
    const out: ExistingLayer[] = [];
    for (const im of images) {
      const m = parseManifest(im.bytes, im.mediaType, `${this.name} (existing)`);
      if (m.kind !== 'image') continue;
      const config = parseConfig(
        await this.client.getBlobBytes(this.ref.repository, m.config.digest, { size: m.config.size, signal }),
        `config ${m.config.digest} of ${this.name}`,
      );
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== m.layers.length) continue;
      for (const [i, descriptor] of m.layers.entries())
        out.push({
          diffId: diffIds[i]!,
          descriptor,
          open: (s) =>
            this.client.openBlob(this.ref.repository, descriptor.digest, {
              size: descriptor.size,
              signal: s,
            }),
        });
    }
    return out;
  }

  putBlobStream(
    open: () => Promise<Readable>,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; size: number }> {
    return this.client.uploadBlobStream(this.ref.repository, open, { signal });
  }

  async putBlob(desc: Descriptor, open: () => Promise<Readable>, signal?: AbortSignal): Promise<void> {
    await this.client.uploadBlob(this.ref.repository, desc.digest, desc.size, open, {
      chunkSize: this.#opts.chunkSize,
      signal,
    });
  }

  async putManifest(m: RawManifest, top: boolean, signal?: AbortSignal): Promise<void> {
    if (!top) {
      await this.client.putManifest(this.ref.repository, m.digest, m.bytes, m.mediaType, signal);
      return;
    }
    const tags = [...new Set([...(this.ref.tag ? [this.ref.tag] : []), ...(this.#opts.tags ?? [])])];
    if (tags.length === 0)
      await this.client.putManifest(this.ref.repository, m.digest, m.bytes, m.mediaType, signal);
    for (const tag of tags)
      await this.client.putManifest(this.ref.repository, tag, m.bytes, m.mediaType, signal);
  }

  async commit(): Promise<void> {}
  async abort(): Promise<void> {}
}
