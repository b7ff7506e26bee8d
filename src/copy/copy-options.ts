// The copy's options, its events and its result: what copyImage, the ImageCopier and createIndex
// share (in a file of their own, so the copier does not import the function that drives it).
import type { BlobInfoCache } from '../cache/index.ts';
import type { Digest } from '../digest/index.ts';
import type { ManifestFormat, Platform } from '../image/index.ts';
import type { Compression } from '../layers/index.ts';

/** What the orchestrator reports while it works (rendered by the CLI's progress display). */
export type CopyEvent =
  | { type: 'blob-start'; digest: Digest; size: number; mediaType: string }
  | { type: 'blob-progress'; digest: Digest; bytes: number }
  | { type: 'blob-done'; digest: Digest; size: number }
  | { type: 'blob-skip'; digest: Digest; size: number; reason: 'exists' | 'mounted' }
  | { type: 'manifest'; digest: Digest; mediaType: string };

export interface CopyOptions {
  /**
   * Platforms to copy from an index (default: the host's). Several keep an index of just those.
   * Given, they are asked for explicitly: one platform and a single-platform source of another
   * platform is an error (E_PLATFORM_MISMATCH), as in every command ({@link selectImage}).
   */
  platforms?: Platform[];
  /** Copy the whole index, every platform, unchanged. */
  all?: boolean;
  /** Parallel blob transfers (default 6). */
  jobs?: number;
  /**
   * Convert manifests to this format (digests change); default: keep them as they are, except
   * Docker ones written to an OCI layout (converted to OCI, as skopeo does).
   */
  format?: ManifestFormat;
  /** Refuse any change of digest (a conversion, a recompression), as skopeo's --preserve-digests. */
  preserveDigests?: boolean;
  /**
   * Recompress layers to this (`none` keeps or makes them uncompressed); layer digests and the
   * manifest change. Default: layers keep their bytes, except uncompressed layers sent to a sink
   * that asks for compression (a registry: gzip).
   */
  compress?: Compression;
  /** Compression level for `compress` (gzip 1–9, zstd 1–22). */
  compressLevel?: number;
  /**
   * What earlier runs learnt about blobs: where they were seen (for cross-repository mounts) and
   * compressed↔uncompressed pairs (to skip compressing a layer the destination registry has).
   */
  blobInfo?: BlobInfoCache;
  signal?: AbortSignal;
  onEvent?: (e: CopyEvent) => void;
}

export interface CopyResult {
  /** Digest of the manifest written as the destination's top level. */
  digest: Digest;
  mediaType: string;
  /** Digests of the image manifests copied. */
  images: Digest[];
  blobsCopied: number;
  blobsSkipped: number;
  bytesCopied: number;
}
