import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.ts';
import type { Descriptor } from '../image/index.ts';
import type { BlobReader } from './files.ts';

/** A manifest as a transport holds it: the exact bytes, their media type and digest. */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/**
 * Where images come from. Every method returns *verified* data: a blob stream errors instead of
 * ending when its bytes do not match the descriptor, and a manifest fetched by digest matches it.
 * Streams are fresh on each call, so a consumer may read a blob twice or retry.
 */
export interface ImageSource {
  /** How the user named it (`oci:/tmp/x:latest`), for messages. */
  readonly name: string;
  /** The top-level manifest (an index, or a single image manifest). */
  topManifest(signal?: AbortSignal): Promise<RawManifest>;
  /** A manifest by digest (an index's instance). */
  manifest(digest: Digest, signal?: AbortSignal): Promise<RawManifest>;
  /** A blob (config or layer) as a fresh verified stream. */
  blob(
    desc: Descriptor,
    opts?: { signal?: AbortSignal; onProgress?: (bytes: number) => void },
  ): Promise<Readable>;
  close(): Promise<void>;
  /**
   * A blob's bytes to a synchronous consumer (each piece valid only during the call), resolving
   * only once they all came and their digest and size checked out: the data path without
   * streams (a registry reads them on a raw connection into one reused buffer).
   */
  readBlob?(
    desc: Descriptor,
    onData: (piece: Buffer) => void,
    signal?: AbortSignal,
    onProgress?: (bytes: number) => void,
  ): Promise<void>;
  /**
   * The uncompressed size a layer claims without reading it all (a gzip trailer's ISIZE; the blob
   * size of an uncompressed layer), or undefined. A hint: whoever uses it must check it.
   */
  layerSizeHint?(desc: Descriptor, signal?: AbortSignal): Promise<number | undefined>;
  /** The registry repository the blobs come from, when the source is a registry. */
  readonly location?: { registry: string; repository: string };
  /**
   * The layer media types do not say how the bytes served are compressed (a docker-archive or an
   * engine labels every layer gzip, as containers/image does): copy reads their first bytes.
   */
  readonly untrustedLayerTypes?: boolean;
}

/** One image with everything needed to write it as a whole (what docker-archive sinks take). */
export interface WholeImage {
  manifest: RawManifest;
  configDescriptor: Descriptor;
  configBytes: Buffer;
  layers: Descriptor[];
  /** Opens a layer's compressed bytes, verified. */
  blob(desc: Descriptor, opts?: { signal?: AbortSignal }): Promise<Readable>;
  /** The same bytes to a synchronous consumer, verified before it resolves (see ImageSource.readBlob). */
  readBlob?(desc: Descriptor, onData: (piece: Buffer) => void, signal?: AbortSignal): Promise<void>;
  /** A layer's uncompressed size as its bytes claim it (unchecked), when cheap to learn. */
  sizeHint?(desc: Descriptor, signal?: AbortSignal): Promise<number | undefined>;
}

/**
 * Where images go. The contract (containers/image's, written down):
 * - Blobs MUST be put before the manifests that reference them, and instance manifests before
 *   the index that lists them.
 * - `putBlob` MUST verify the stream against the descriptor while storing it, and on ANY error
 *   (including one raised by the stream at its very end) MUST fail and delete what it stored.
 * - Nothing becomes visible under the destination's name until `commit()`; `abort()` removes
 *   whatever was staged. A sink is used once.
 */
export interface ImageSink {
  readonly name: string;
  /** Whether the sink can store an index (else only one platform's image). */
  readonly acceptsIndex: boolean;
  /**
   * The sink stores only OCI manifests (an OCI layout: what skopeo, podman, buildah and umoci
   * read there); Docker ones are converted on the way, as skopeo does.
   */
  readonly ociOnly?: boolean;
  /**
   * Compression for layers that arrive uncompressed (a registry: gzip, as containers/image does);
   * undefined keeps them as they are.
   */
  readonly desiredLayerCompression?: 'gzip' | 'zstd';
  /**
   * Layers the destination already holds under its name (a registry tag's current image or index;
   * for a tag not there yet, a few other tags' images of the repository), with the uncompressed
   * digests (diff_ids) their configs give, so that a layer about to be compressed can be reused
   * instead. Empty when there is nothing there.
   */
  existingLayers?(signal?: AbortSignal): Promise<ExistingLayer[]>;
  /** The registry repository written to, when the sink is a registry. */
  readonly location?: { registry: string; repository: string };
  /**
   * Stores a blob whose digest is known only once it has all been read (a layer compressed on
   * the fly), returning digest and size; the sink verifies nothing beyond them.
   */
  putBlobStream?(
    open: () => Promise<Readable>,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; size: number }>;
  /** Cross-repository mount of a blob from another repository of the same registry. */
  mountFrom?(desc: Descriptor, repository: string, signal?: AbortSignal): Promise<boolean>;
  /**
   * Sinks that write a whole image at once (docker-archive) implement this instead of the
   * blob/manifest methods.
   */
  writeImage?(image: WholeImage, signal?: AbortSignal): Promise<void>;
  /** True when the blob is already there (HEAD, stat), so it can be skipped. */
  hasBlob(desc: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** Optional cheaper reuse (cross-repository mount). Returns true when the blob is now present. */
  reuseBlob?(desc: Descriptor, signal?: AbortSignal): Promise<boolean>;
  putBlob(desc: Descriptor, open: () => Promise<Readable>, signal?: AbortSignal): Promise<void>;
  /**
   * {@link putBlob} from a synchronous reader (see ImageSource.readBlob), for sinks that write
   * files: each piece is written as it arrives. The same contract: verified (by the reader when
   * `reader.verified`, else here), nothing left on failure.
   */
  putBlobFrom?(desc: Descriptor, reader: BlobReader, signal?: AbortSignal): Promise<void>;
  /** Stores a manifest; `top` marks the one the destination's name points at. */
  putManifest(manifest: RawManifest, top: boolean, signal?: AbortSignal): Promise<void>;
  commit(signal?: AbortSignal): Promise<void>;
  abort(): Promise<void>;
}

/** A layer a destination holds, with the digest of its uncompressed content. */
export interface ExistingLayer {
  diffId: Digest;
  descriptor: Descriptor;
}

/** A parsed `transport:reference` string. */
export interface TransportRef {
  transport: string;
  /** The part after `transport:`, e.g. a path with optional tag. */
  details: string;
  /** Canonical string form, for messages. */
  toString(): string;
}
