import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor, ImageSource } from '../image/index.ts';
import { extractPaths, type LayerBlob } from '../layers/index.ts';

/** Which layer decides a path: reading the layers from the top, this is the last one needed. */
export interface DecidingLayer {
  /** Index of the layer (0 = bottom); the layers from it up decide the path. */
  layer: number;
  /** That layer's digest, so a stale record is caught. */
  digest: string;
}

/**
 * For each path, the lowest layer `extractFile` must read: layers are scanned from the top until
 * the path (symlinks followed, whiteouts applied) is decided, so everything below that layer is
 * never needed. The layers read on the way are fetched once (through the source's cache).
 */
export async function decidingLayers(
  source: ImageSource,
  layers: Descriptor[],
  paths: string[],
  tmpRoot: string,
  signal?: AbortSignal,
): Promise<Record<string, DecidingLayer>> {
  const blobs: LayerBlob[] = layers.map((d) => ({
    digest: d.digest,
    size: d.size,
    mediaType: d.mediaType,
    open: () => source.blob(d, { signal }),
  }));
  const out: Record<string, DecidingLayer> = {};
  const tmp = await mkdtemp(join(tmpRoot, 'lading-decide-'));
  try {
    for (const [i, path] of paths.entries()) {
      const r = await extractPaths(blobs, [path], { dest: join(tmp, `f${i}`), signal });
      // A file is decided by a contiguous run of layers from the top.
      const layer = r.layerCount - r.layersOpened;
      out[path] = { layer, digest: layers[layer]!.digest };
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return out;
}
