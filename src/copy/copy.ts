import type { BlobInfoCache } from '../cache/index.ts';
import type { Digest } from '../digest/index.ts';
import {
  hostPlatform,
  type ImageSink,
  type ImageSource,
  type ManifestFormat,
  type Platform,
  parseManifest,
  selectImage,
} from '../image/index.ts';
import type { Compression } from '../layers/index.ts';
import { optionsFor } from './convert-image.ts';
import { ImageCopier } from './image-copier.ts';
import { copyIndex } from './index-copy.ts';

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

/**
 * Copies an image (or an index) from `src` to `dst`: blobs first (skipping what the destination
 * has, mounting where it can), then manifests, then commit. On any failure the sink is aborted, so
 * nothing is left where the result belongs. Digests never change unless platforms are filtered
 * out of an index (the new index is then written).
 */
export async function copyImage(
  src: ImageSource,
  dst: ImageSink,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const opts = optionsFor(options, dst);
  const copier = new ImageCopier(src, dst, opts);
  return copier.run(async () => {
    const top = await src.topManifest(opts.signal);
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    const wanted = opts.platforms?.length ? opts.platforms : [hostPlatform()];
    if (parsed.kind === 'index' && (opts.all || (wanted.length > 1 && dst.acceptsIndex))) {
      await copyIndex(copier, top, parsed, wanted);
      return;
    }
    // One image: the selector holds the platform policy (and refuses schema1).
    const sel = await selectImage(src, {
      platform: wanted[0],
      explicit: opts.platforms?.length === 1 && !opts.all,
      signal: opts.signal,
    });
    await copier.copyTop(sel.instance);
  });
}
