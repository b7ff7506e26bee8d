import { sha256 } from '../digest/index.ts';
import type { BlobSink, Descriptor, ImageManifest, RawManifest } from '../image/index.ts';
import type { Compression } from '../layers/index.ts';
import { layerTarget } from './layer-bytes.ts';
import { layerCompression, layerMediaType } from './recompress.ts';

/** A layer's new compression, and the media type that names it in the manifest. */
export interface LayerTarget {
  to: Compression;
  mediaType: string;
}

/** Which layers get new compression (index → target), checked before anything is transferred. */
export function recompressPlan(
  image: ImageManifest,
  manifestMediaType: string,
  dst: BlobSink,
  compress: Compression | undefined,
  actual: Map<number, Compression>,
): Map<number, LayerTarget> {
  const plan = new Map<number, LayerTarget>();
  image.layers.forEach((l, i) => {
    const label = layerCompression(l.mediaType);
    if (label === undefined) return; // foreign or unknown layer types keep their bytes
    const to = layerTarget(label, actual.get(i), compress, dst.desiredLayerCompression);
    if (to === undefined) return;
    plan.set(i, { to, mediaType: layerMediaType(manifestMediaType, to, dst.name) });
  });
  return plan;
}

/** `m` with layer `i` described by `layers.get(i)`. */
export function withLayers(m: RawManifest, layers: Map<number, Descriptor>): RawManifest {
  const json = JSON.parse(m.bytes.toString('utf8')) as { layers: Record<string, unknown>[] };
  json.layers = json.layers.map((l, i) => {
    const d = layers.get(i);
    if (!d) return l;
    const { urls: _urls, ...rest } = l;
    return { ...rest, mediaType: d.mediaType, digest: d.digest, size: d.size };
  });
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, digest: sha256(bytes), mediaType: m.mediaType };
}
