import type { Digest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  type ImageManifest,
  type IndexManifest,
  type Manifest,
  type Platform,
  parseConfig,
  parseManifest,
  selectPlatform,
} from '../image/index.ts';
import type { Reference } from '../reference/index.ts';
import type { FetchedManifest, RegistryClient } from './client.ts';

/** One image manifest with its config, as fetched and verified. */
export interface ResolvedInstance {
  /** The reference pinned to this manifest's digest. */
  ref: Reference;
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  manifest: ImageManifest;
  /** The index entry that led here, if any. */
  descriptor?: Descriptor;
  configBytes: Buffer;
  config: ImageConfig;
}

/** A reference resolved to a single platform's image. */
export interface ResolvedImage {
  /** What was asked for. */
  ref: Reference;
  /** Digest of the top-level manifest (the index for multi-arch images). */
  digest: Digest;
  mediaType: string;
  /** The top-level manifest bytes, exactly as served. */
  bytes: Buffer;
  manifest: Manifest;
  /** Present when the top level is an index or manifest list. */
  index?: IndexManifest;
  /** The chosen platform's image. */
  image: ResolvedInstance;
}

export interface ResolveOptions {
  /** Wanted platform (default: linux on the host's architecture). */
  platform?: Platform;
  /** True when the user asked for the platform explicitly: a single-arch image of another platform is an error. */
  platformExplicit?: boolean;
  signal?: AbortSignal;
}

/** Fetches and parses the top-level manifest of `ref`. */
export async function fetchManifest(
  client: RegistryClient,
  ref: Reference,
  signal?: AbortSignal,
): Promise<{ fetched: FetchedManifest; manifest: Manifest }> {
  const fetched = await client.getManifest(ref, signal);
  return { fetched, manifest: parseManifest(fetched.bytes, fetched.contentType, String(ref)) };
}

/** Lists the platforms an index offers, for messages. */
export function indexPlatforms(index: IndexManifest): string[] {
  return index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : `(no platform: ${d.digest})`));
}

/** Picks the index entry for `platform`, or throws E_NO_MATCHING_PLATFORM listing what there is. */
export function selectFromIndex(index: IndexManifest, platform: Platform, ref: string): Descriptor {
  // Attestation manifests (buildkit) carry platform unknown/unknown and are never selected.
  const i = selectPlatform(
    platform,
    index.manifests.map((d) => d.platform),
  );
  const chosen = i === -1 ? undefined : index.manifests[i];
  if (!chosen) {
    const have = indexPlatforms(index).filter((p) => p !== 'unknown/unknown');
    throw new LadingError(
      ErrorCode.NoMatchingPlatform,
      `no image for platform ${formatPlatform(platform)} in ${ref}; it has: ${have.join(', ') || 'no platforms'}`,
      { ref, expected: formatPlatform(platform), found: have.join(', ') },
    );
  }
  return chosen;
}

/**
 * Resolves `ref` to one platform's image manifest and config, verifying every digest on the way.
 */
export async function resolveImage(
  client: RegistryClient,
  ref: Reference,
  opts: ResolveOptions = {},
): Promise<ResolvedImage> {
  const platform = opts.platform ?? hostPlatform();
  const { fetched, manifest } = await fetchManifest(client, ref, opts.signal);
  const top = { ref, digest: fetched.digest, mediaType: manifest.mediaType, bytes: fetched.bytes, manifest };
  if (manifest.kind === 'schema1') {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `${ref} is a Docker schema1 manifest: lading reads it (inspect) but cannot pull it; push it again with a current client`,
      { ref: String(ref), found: manifest.mediaType },
    );
  }
  if (manifest.kind === 'index') {
    const chosen = selectFromIndex(manifest, platform, String(ref));
    const instanceRef = ref.withDigest(chosen.digest);
    const inst = await fetchManifest(client, instanceRef, opts.signal);
    if (inst.manifest.kind !== 'image') {
      throw new LadingError(
        ErrorCode.ManifestUnsupported,
        `${instanceRef} (selected for ${formatPlatform(platform)}) is a ${inst.manifest.mediaType}, not an image manifest`,
        { ref: String(instanceRef) },
      );
    }
    const image = await withConfig(client, instanceRef, inst.fetched, inst.manifest, opts.signal);
    image.descriptor = chosen;
    return { ...top, index: manifest, image };
  }
  const image = await withConfig(client, ref.withDigest(fetched.digest), fetched, manifest, opts.signal);
  if (opts.platformExplicit && image.config.architecture) {
    const has: Platform = { os: image.config.os ?? 'linux', architecture: image.config.architecture };
    if (image.config.variant) has.variant = image.config.variant;
    if (selectPlatform(platform, [has]) === -1) {
      throw new LadingError(
        ErrorCode.PlatformMismatch,
        `${ref} is a single-platform image for ${formatPlatform(has)}, not ${formatPlatform(platform)}`,
        { ref: String(ref), expected: formatPlatform(platform), found: formatPlatform(has) },
      );
    }
  }
  return { ...top, image };
}

async function withConfig(
  client: RegistryClient,
  ref: Reference,
  fetched: FetchedManifest,
  manifest: ImageManifest,
  signal?: AbortSignal,
): Promise<ResolvedInstance> {
  const configBytes = await client.getBlobBytes(ref.repository, manifest.config.digest, {
    size: manifest.config.size,
    signal,
  });
  return {
    ref,
    digest: fetched.digest,
    mediaType: manifest.mediaType,
    bytes: fetched.bytes,
    manifest,
    configBytes,
    config: parseConfig(configBytes, `config ${manifest.config.digest} of ${ref}`),
  };
}
