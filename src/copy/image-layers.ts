import type { Descriptor, ImageSource, SelectedImage } from '../image/index.ts';
import type { LayerBlob } from '../layers/index.ts';

/** A selected image with its layers, ready for the flattening engine. */
export interface ImageLayers extends SelectedImage {
  /** Layers bottom first, each re-openable and verified. */
  layers: LayerBlob[];
  /** Total compressed size of the layers. */
  totalSize: number;
}

/** Exposes a selected image's layers (from `source`) to the flattening engine. */
export function imageLayers(
  source: ImageSource,
  sel: SelectedImage,
  opts: { signal?: AbortSignal; onOpen?: (d: Descriptor) => void; onBytes?: (n: number) => void } = {},
): ImageLayers {
  const layers: LayerBlob[] = sel.manifest.layers.map((d) => ({
    digest: d.digest,
    size: d.size,
    mediaType: d.mediaType,
    open: async (o) => {
      opts.onOpen?.(d);
      return source.blob(d, { signal: o?.signal ?? opts.signal, onProgress: opts.onBytes });
    },
  }));
  return { ...sel, layers, totalSize: sel.manifest.layers.reduce((n, l) => n + l.size, 0) };
}
