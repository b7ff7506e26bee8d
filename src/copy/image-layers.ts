import type { Digest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  formatPlatform,
  type ImageManifest,
  type Platform,
  parseManifest,
  selectPlatform,
} from '../image/index.ts';
import type { LayerBlob } from '../layers/index.ts';
import type { ImageSource, RawManifest } from '../transports/index.ts';

export interface SelectedImage {
  /** Top-level manifest (index for multi-arch). */
  top: RawManifest;
  /** The chosen image manifest. */
  instance: RawManifest;
  manifest: ImageManifest;
  /** Layers bottom first, each re-openable and verified. */
  layers: LayerBlob[];
  /** Total compressed size of the layers. */
  totalSize: number;
}

/** Picks one platform's image from a source and exposes its layers to the flattening engine. */
export async function selectImage(
  source: ImageSource,
  platform: Platform,
  opts: { signal?: AbortSignal; onOpen?: (d: Descriptor) => void; onBytes?: (n: number) => void } = {},
): Promise<SelectedImage> {
  const top = await source.topManifest(opts.signal);
  const parsed = parseManifest(top.bytes, top.mediaType, source.name);
  let instance = top;
  if (parsed.kind === 'schema1') {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `${source.name} is a Docker schema1 manifest, which lading cannot unpack`,
    );
  }
  if (parsed.kind === 'index') {
    const i = selectPlatform(
      platform,
      parsed.manifests.map((d) => d.platform),
    );
    const d = parsed.manifests[i];
    if (!d) {
      const have = parsed.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : m.digest));
      throw new LadingError(
        ErrorCode.NoMatchingPlatform,
        `no image for platform ${formatPlatform(platform)} in ${source.name}; it has: ${have.join(', ')}`,
      );
    }
    instance = await source.manifest(d.digest as Digest, opts.signal);
  }
  const manifest = parseManifest(instance.bytes, instance.mediaType, source.name);
  if (manifest.kind !== 'image')
    throw new LadingError(ErrorCode.ManifestUnsupported, `${source.name}: not an image manifest`);
  const layers: LayerBlob[] = manifest.layers.map((d) => ({
    digest: d.digest,
    size: d.size,
    mediaType: d.mediaType,
    open: async (o) => {
      opts.onOpen?.(d);
      const s = await source.blob(d, { signal: o?.signal ?? opts.signal, onProgress: opts.onBytes });
      return s;
    },
  }));
  return { top, instance, manifest, layers, totalSize: manifest.layers.reduce((n, l) => n + l.size, 0) };
}
