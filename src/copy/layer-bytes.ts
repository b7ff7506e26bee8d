import type { ImageManifest, ImageSource } from '../image/index.ts';
import type { Compression } from '../layers/index.ts';
import { detectCompression } from '../layers/index.ts';
import { mapLimit } from './util.ts';

/**
 * How each layer's bytes are really compressed, for a source whose layer media types cannot be
 * trusted (a docker-archive or an engine labels every layer gzip, as containers/image does):
 * read from the first bytes of each layer as the source serves it. Empty for other sources.
 */
export async function layerBytesCompression(
  src: ImageSource,
  image: ImageManifest,
  signal?: AbortSignal,
): Promise<Map<number, Compression>> {
  const out = new Map<number, Compression>();
  if (!src.untrustedLayerTypes) return out;
  await mapLimit(
    image.layers.map((l, i) => [l, i] as const),
    4,
    async ([l, i]) => {
      const stream = await src.blob(l, { signal });
      let head = Buffer.alloc(0);
      try {
        for await (const chunk of stream) {
          head = Buffer.concat([head, chunk as Buffer]);
          if (head.length >= 4) break;
        }
      } finally {
        stream.destroy();
      }
      out.set(i, detectCompression(head));
    },
  );
  return out;
}

/** Whether layer `i` needs new bytes: they do not match its label, or the destination wants others. */
export function layerTarget(
  label: Compression,
  actual: Compression | undefined,
  compress: Compression | undefined,
  desired: 'gzip' | 'zstd' | undefined,
): Compression | undefined {
  const from = actual ?? label;
  // Bytes that lie about their compression get the compression their label promised.
  const to = compress ?? (from === 'none' && desired ? desired : from !== label ? label : undefined);
  if (to === undefined || (to === from && from === label)) return undefined;
  return to;
}

/** The level a compression runs at: the given one, else the compressors' defaults (gzip 6, zstd 3). */
export function effectiveLevel(to: 'gzip' | 'zstd', level: number | undefined): number {
  return level ?? (to === 'gzip' ? 6 : 3);
}

/**
 * Whether a compressed form recorded in an earlier run is the one compressing now would make: the
 * same compression at the same level. Reusing another (a level-3 zstd blob for level 12) would make
 * the result depend on what the cache holds.
 */
export function sameForm(
  c: { compression: 'gzip' | 'zstd'; level?: number },
  to: 'gzip' | 'zstd',
  level: number | undefined,
): boolean {
  return c.compression === to && c.level === effectiveLevel(to, level);
}
