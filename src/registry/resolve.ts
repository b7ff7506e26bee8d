import type { Digest } from '../digest/index.ts';
import {
  type Descriptor,
  detectMediaType,
  type ImageConfig,
  type ImageManifest,
  type ImageSource,
  type IndexManifest,
  type Manifest,
  type Platform,
  parseConfig,
  type RawManifest,
  selectImage,
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

export { indexPlatforms } from '../image/index.ts';

/** A repository read straight through the client, as the image selector reads sources. */
function clientSource(client: RegistryClient, ref: Reference): ImageSource {
  const raw = (m: FetchedManifest): RawManifest => ({
    bytes: m.bytes,
    digest: m.digest,
    mediaType: detectMediaType(JSON.parse(m.bytes.toString('utf8')), m.contentType),
  });
  return {
    name: String(ref),
    topManifest: async (signal) => raw(await client.getManifest(ref, signal)),
    manifest: async (digest, signal) => raw(await client.getManifest(ref.withDigest(digest), signal)),
    blob: (d, o) => client.openBlob(ref.repository, d.digest, { size: d.size, ...o }),
    close: async () => {},
  };
}

/**
 * Resolves `ref` to one platform's image manifest and config, verifying every digest on the way
 * (the platform policy is {@link selectImage}'s).
 */
export async function resolveImage(
  client: RegistryClient,
  ref: Reference,
  opts: ResolveOptions = {},
): Promise<ResolvedImage> {
  const sel = await selectImage(clientSource(client, ref), {
    platform: opts.platform,
    explicit: opts.platformExplicit,
    signal: opts.signal,
  });
  const topManifest: Manifest = sel.index ?? sel.manifest;
  const instanceRef = ref.withDigest(sel.instance.digest);
  const configBytes =
    sel.config?.bytes ??
    (await client.getBlobBytes(ref.repository, sel.manifest.config.digest, {
      size: sel.manifest.config.size,
      signal: opts.signal,
    }));
  const image: ResolvedInstance = {
    ref: instanceRef,
    digest: sel.instance.digest,
    mediaType: sel.manifest.mediaType,
    bytes: sel.instance.bytes,
    manifest: sel.manifest,
    configBytes,
    config:
      sel.config?.parsed ??
      parseConfig(configBytes, `config ${sel.manifest.config.digest} of ${instanceRef}`),
  };
  if (sel.descriptor) image.descriptor = sel.descriptor;
  const resolved: ResolvedImage = {
    ref,
    digest: sel.top.digest,
    mediaType: topManifest.mediaType,
    bytes: sel.top.bytes,
    manifest: topManifest,
    image,
  };
  if (sel.index) resolved.index = sel.index;
  return resolved;
}
