import { Transform } from 'node:stream';
import { type ImageLayers, imageLayers, openSource, withDiffIds } from '../copy/index.ts';
import { type ImageSource, selectImage } from '../image/index.ts';
import type { LayerBlob } from '../layers/index.ts';
import { parseLocation } from '../transports/index.ts';
import { type CacheFlags, cacheFrom } from './cache-options.ts';
import type { CommandContext } from './context.ts';
import type { CliIo } from './io.ts';
import { type PlatformFlags, platformFrom, type RegistryFlags } from './options.ts';
import type { Progress } from './render/progress.ts';

/**
 * Opens IMAGE (any transport), selects the asked platform's image, runs `fn` on it, and closes
 * the source: what unpack, export and extract share. The platform policy is the library's
 * ({@link selectImage}): with `--platform` (or `--override-*`), a single-platform image of another
 * platform is an error. The config's diff_ids are attached to the layers, so every layer read is
 * verified uncompressed too.
 * With `show`, the layers' reading is shown as progress until `fn` calls `workDone` (before it
 * prints anything) or returns.
 */
export async function withImage<T>(
  ctx: CommandContext<PlatformFlags & CacheFlags & RegistryFlags>,
  io: CliIo,
  image: string,
  fn: (sel: ImageLayers, source: ImageSource, workDone: () => void) => Promise<T>,
  show?: { what: string; whole: boolean },
): Promise<T> {
  const source = openSource(parseLocation(image), {
    pool: ctx.pool(),
    cache: await cacheFrom(ctx.flags, io),
    stdin: io.stdin,
    env: io.env,
  });
  try {
    const sel = await selectImage(source, platformFrom(ctx.flags));
    // Every layer read is checked against its diff_id too (exit 5 on a mismatch).
    const checked = await withDiffIds(source, imageLayers(source, sel));
    if (!show) return await fn(checked, source, () => {});
    // Every layer read is shown as it is read; the whole is known when every layer will be.
    const progress = ctx.progress({
      label: `${show.what} ${image}`,
      unit: 'layers',
      total: show.whole ? checked.totalSize : undefined,
    });
    // The command says when its reading is done, before it prints its own report.
    const done = () => progress.finish();
    const result = await fn(
      { ...checked, layers: checked.layers.map((l) => shownLayer(l, progress)) },
      source,
      done,
    );
    done();
    return result;
  } finally {
    await source.close();
  }
}

/** A layer whose reads are reported to `progress` (compressed bytes, as they arrive). */
function shownLayer(layer: LayerBlob, progress: Progress): LayerBlob {
  return {
    ...layer,
    open: async (opts) => {
      const raw = await layer.open(opts);
      const digest = layer.digest;
      progress.onEvent({
        type: 'blob-start',
        digest,
        size: layer.size ?? 0,
        mediaType: layer.mediaType ?? '',
      });
      let ended = false;
      const counted = new Transform({
        transform(chunk: Buffer, _e, cb) {
          progress.onEvent({ type: 'blob-progress', digest, bytes: chunk.length });
          cb(null, chunk);
        },
        flush(cb) {
          ended = true;
          progress.onEvent({ type: 'blob-done', digest, size: layer.size ?? 0 });
          cb();
        },
      });
      raw.once('error', (err) => counted.destroy(err));
      // A reader that stops early (extract) closes this stream: the layer's own goes too.
      counted.once('close', () => {
        if (!ended) progress.stopped(digest);
        if (!raw.destroyed) raw.destroy();
      });
      return raw.pipe(counted);
    },
  };
}
