import { type Digest, sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { Descriptor } from './descriptor.ts';
import { isImageManifestMediaType, isIndexMediaType, MediaType } from './media-types.ts';

/** A manifest format lading can convert to. */
export type ManifestFormat = 'oci' | 'v2s2';

const TO_DOCKER: Record<string, string> = {
  [MediaType.OciConfig]: MediaType.DockerConfig,
  [MediaType.OciLayer]: MediaType.DockerLayer,
  [MediaType.OciLayerGzip]: MediaType.DockerLayerGzip,
  [MediaType.OciLayerNondistributableGzip]: MediaType.DockerForeignLayerGzip,
  [MediaType.OciManifest]: MediaType.DockerManifest,
};
const TO_OCI: Record<string, string> = {
  [MediaType.DockerConfig]: MediaType.OciConfig,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
  [MediaType.DockerForeignLayerGzip]: MediaType.OciLayerNondistributableGzip,
  [MediaType.DockerManifest]: MediaType.OciManifest,
};

function mapType(mt: string, to: ManifestFormat, what: string): string {
  const table = to === 'oci' ? TO_OCI : TO_DOCKER;
  if (Object.values(table).includes(mt)) return mt;
  const mapped = table[mt];
  if (!mapped) {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `cannot convert ${what} of media type ${mt} to ${to === 'oci' ? 'OCI' : 'Docker schema2'}${mt.endsWith('zstd') ? ' (Docker schema2 has no zstd layers)' : ''}`,
    );
  }
  return mapped;
}

/** A platform in the field order of the Go structs (architecture first). */
function platform(p: NonNullable<Descriptor['platform']>): Record<string, unknown> {
  const out: Record<string, unknown> = { architecture: p.architecture, os: p.os };
  if (p['os.version']) out['os.version'] = p['os.version'];
  if (p['os.features']?.length) out['os.features'] = p['os.features'];
  if (p.variant) out.variant = p.variant;
  if (p.features?.length) out.features = p.features;
  return out;
}

/** Descriptor fields in the order each format's Go structs write them. */
function descriptor(d: Descriptor, to: ManifestFormat, mediaType: string): Record<string, unknown> {
  if (to === 'v2s2') {
    const out: Record<string, unknown> = { mediaType, size: d.size, digest: d.digest };
    if (d.urls?.length) out.urls = d.urls;
    if (d.platform) out.platform = platform(d.platform);
    return out;
  }
  const out: Record<string, unknown> = { mediaType, digest: d.digest, size: d.size };
  if (d.urls?.length) out.urls = d.urls;
  if (d.annotations) out.annotations = d.annotations;
  if (d.platform) out.platform = platform(d.platform);
  return out;
}

/** Whether a manifest of `mediaType` already is in `to`'s format. */
export function isFormat(mediaType: string, to: ManifestFormat): boolean {
  return to === 'oci'
    ? mediaType === MediaType.OciManifest || mediaType === MediaType.OciIndex
    : mediaType === MediaType.DockerManifest || mediaType === MediaType.DockerManifestList;
}

/**
 * Converts an image manifest between OCI and Docker schema2 (the blobs stay the same; only media
 * types change, so the manifest digest changes). Annotations do not exist in schema2 and are dropped.
 */
export function convertImageManifest(
  parsed: { config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> },
  to: ManifestFormat,
): { bytes: Buffer; mediaType: string; digest: Digest } {
  const mediaType = to === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest;
  const json: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(parsed.config, to, mapType(parsed.config.mediaType, to, 'the config')),
    layers: parsed.layers.map((l, i) => descriptor(l, to, mapType(l.mediaType, to, `layer ${i}`))),
  };
  if (to === 'oci' && parsed.annotations) json.annotations = parsed.annotations;
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, mediaType, digest: sha256(bytes) };
}

/** Converts an index/list whose children were converted (given as new descriptors, same order). */
export function convertIndex(
  children: Descriptor[],
  to: ManifestFormat,
  annotations?: Record<string, string>,
): { bytes: Buffer; mediaType: string; digest: Digest } {
  const mediaType = to === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList;
  for (const c of children) {
    if (!isImageManifestMediaType(c.mediaType) && !isIndexMediaType(c.mediaType)) {
      throw new LadingError(
        ErrorCode.ManifestUnsupported,
        `cannot convert an index entry of media type ${c.mediaType}`,
      );
    }
  }
  const json: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c) => descriptor(c, to, c.mediaType)),
  };
  if (to === 'oci' && annotations) json.annotations = annotations;
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, mediaType, digest: sha256(bytes) };
}
