import type { Readable } from 'node:stream';
import type { Digest } from '../digest/index.ts';
import type { Descriptor } from './descriptor.ts';

// The contracts between where images come from, where they go, and what moves them. They sit at
// the image level so that every level above (registry, transports, build, copy) names the same
// types instead of restating them.

/** A manifest as a source or sink holds it: the exact bytes, their media type and digest. */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** Options of {@link ImageSource.blob}. */
export interface BlobReadOptions {
  signal?: AbortSignal;
  /** Called with the number of bytes read since the previous call (never a running total). */
  onProgress?: (bytes: number) => void;
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
  blob(desc: Descriptor, opts?: BlobReadOptions): Promise<Readable>;
  close(): Promise<void>;
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
  /** Blob bytes fetched over the network so far, for a source that fetches (not from a cache). */
  readonly fetchedBytes?: number;
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
   * A hint that `desc` will be read (readBlob) soon, for a source that can start on it ahead (a
   * registry sends the GET, so that its time to the first byte passes meanwhile).
   */
  prepareBlob?(desc: Descriptor, signal?: AbortSignal): void;
}

/**
 * A blob's bytes for a synchronous consumer (see {@link ImageSource.readBlob}): `read` hands each
 * piece to `onData` (valid only during the call) and resolves once they all came; `verified` says
 * it resolves only after the digest and size checked out (a registry's blob reader), so they need
 * not be hashed again.
 */
export interface BlobReader {
  read(onData: (piece: Buffer) => void): Promise<void>;
  verified: boolean;
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
 * A layer a destination already holds, with the uncompressed digest its config *claims*. The claim
 * is the destination's word only (whoever can push there wrote it): before using the layer in place
 * of another, check it (`open` gives its bytes) or know the pair from lading's own verified record.
 */
export interface ExistingLayer {
  diffId: Digest;
  descriptor: Descriptor;
  /** The layer's compressed bytes as the destination serves them, verified against the descriptor. */
  open(signal?: AbortSignal): Promise<Readable>;
}

/** How a blob came to be present without its bytes being sent. */
export type ReuseOutcome = 'exists' | 'mounted';

/** What every sink has. A sink is used once. */
interface SinkBase {
  readonly name: string;
  /** Whether the sink can store an index (else only one platform's image). */
  readonly acceptsIndex: boolean;
  /**
   * The sink stores only OCI manifests (an OCI layout: what skopeo, podman, buildah and umoci
   * read there); Docker ones are converted on the way, as skopeo does.
   */
  readonly ociOnly?: boolean;
  /** Makes the result visible under the destination's name. */
  commit(signal?: AbortSignal): Promise<void>;
  /** Removes whatever was staged. */
  abort(): Promise<void>;
}

/**
 * A sink that takes blobs and manifests one by one (a registry, an OCI layout, a `dir:`). The
 * contract (containers/image's, written down):
 * - Blobs MUST be put before the manifests that reference them, and instance manifests before
 *   the index that lists them.
 * - `putBlob` MUST verify the stream against the descriptor while storing it, and on ANY error
 *   (including one raised by the stream at its very end) MUST fail and delete what it stored.
 * - Nothing becomes visible under the destination's name until `commit()`; `abort()` removes
 *   whatever was staged.
 */
export interface BlobSink extends SinkBase {
  readonly kind: 'blobs';
  /**
   * Compression for layers that arrive uncompressed (a registry: gzip, as containers/image does);
   * undefined keeps them as they are.
   */
  readonly desiredLayerCompression?: 'gzip' | 'zstd';
  /** The registry repository written to, when the sink is a registry. */
  readonly location?: { registry: string; repository: string };
  /**
   * Layers the destination already holds under its name (a registry tag's current image or index;
   * for a tag not there yet, a few other tags' images of the repository). Empty when there is
   * nothing there. Their diff_ids are claims: see {@link ExistingLayer}.
   */
  existingLayers?(signal?: AbortSignal): Promise<ExistingLayer[]>;
  /**
   * The one reuse call (containers/image's TryReusingBlob): makes `desc` present without sending
   * its bytes when the sink can — it is there already (HEAD, stat), or it can be mounted from the
   * source repository the sink was opened with (unless `fromSource` is false: a blob made by the
   * copy is not there) or from one of `mountFrom` (other repositories of the same registry).
   * Undefined when the blob must be sent.
   */
  reuseBlob(
    desc: Descriptor,
    opts?: { mountFrom?: readonly string[]; fromSource?: boolean; signal?: AbortSignal },
  ): Promise<ReuseOutcome | undefined>;
  putBlob(desc: Descriptor, open: () => Promise<Readable>, signal?: AbortSignal): Promise<void>;
  /**
   * {@link putBlob} from a synchronous reader (see ImageSource.readBlob), for sinks that write
   * files: each piece is written as it arrives. The same contract: verified (by the reader when
   * `reader.verified`, else here), nothing left on failure.
   */
  putBlobFrom?(desc: Descriptor, reader: BlobReader, signal?: AbortSignal): Promise<void>;
  /**
   * Stores a blob whose digest is known only once it has all been read (a layer compressed on
   * the fly), returning digest and size; the sink verifies nothing beyond them.
   */
  putBlobStream?(
    open: () => Promise<Readable>,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; size: number }>;
  /** Stores a manifest; `top` marks the one the destination's name points at. */
  putManifest(manifest: RawManifest, top: boolean, signal?: AbortSignal): Promise<void>;
}

/** A sink that writes one image at once (a docker-archive, a container engine). */
export interface WholeImageSink extends SinkBase {
  readonly kind: 'whole-image';
  readonly acceptsIndex: false;
  writeImage(image: WholeImage, signal?: AbortSignal): Promise<void>;
}

/** Where images go. */
export type ImageSink = BlobSink | WholeImageSink;
