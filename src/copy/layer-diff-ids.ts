import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type ImageSource, parseConfig } from '../image/index.ts';
import type { ImageLayers } from './image-layers.ts';

/**
 * The selected image with each layer's diff_id (from its config) attached, so that whoever
 * decompresses a layer (unpack, export, extract) verifies the uncompressed bytes too, as prefetch
 * and docker-archive do: a layer whose compressed digest matches but whose content is not what
 * the config (and so the image's identity) says is an integrity error. A config without
 * rootfs.diff_ids leaves the layers as they were; one whose count differs is refused.
 */
export async function withDiffIds(
  source: ImageSource,
  sel: ImageLayers,
  signal?: AbortSignal,
): Promise<ImageLayers> {
  const what = `config of ${source.name}`;
  const bytes =
    sel.config?.bytes ??
    (await readAtMost(await source.blob(sel.manifest.config, { signal }), Limits.config, what));
  const diffIds = parseConfig(bytes, what).rootfs?.diff_ids;
  if (!diffIds) return sel;
  if (diffIds.length !== sel.layers.length)
    throw new LadingError(
      ErrorCode.ManifestInvalid,
      `${what} lists ${diffIds.length} diff_ids for ${sel.layers.length} layers`,
    );
  return {
    ...sel,
    // A layer stored uncompressed is its own diff_id: the source verified it already.
    layers: sel.layers.map((l, i) => (diffIds[i] === l.digest ? l : { ...l, diffId: diffIds[i]! })),
  };
}
