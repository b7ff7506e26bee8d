import { Transform } from 'node:stream';
import { openSource, type SelectedImage, selectImage, withDiffIds } from '../copy/index.ts';
import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  formatPlatform,
  type Platform,
  parseConfig,
  parseManifest,
  selectPlatform,
} from '../image/index.ts';
import type { LayerBlob } from '../layers/index.ts';
import { type ImageSource, parseLocation } from '../transports/index.ts';
import { type CacheFlags, cacheFrom } from './cache-options.ts';
import type { CommandContext } from './context.ts';
import type { CliIo } from './io.ts';
import { type PlatformFlags, platformFrom, type RegistryFlags } from './options.ts';
import type { Progress } from './render/progress.ts';

/**
 * Opens IMAGE (any transport), selects the asked platform's image, runs `fn` on it, and closes
 * the source: what unpack, export and extract share. With `--platform` (or `--override-*`), a
 * single-platform image of another platform is an error (its config says). The config's diff_ids
 * are attached to the layers, so every layer read is verified uncompressed too.
 * With `show`, the layers' reading is shown as progress until `fn` calls `workDone` (before it
 * prints anything) or returns.
 */
export async function withImage<T>(
  ctx: CommandContext<PlatformFlags & CacheFlags & RegistryFlags>,
  io: CliIo,
  image: string,
  fn: (sel: SelectedImage, source: ImageSource, workDone: () => void) => Promise<T>,
  show?: { what: string; whole: boolean },
): Promise<T> {
  const source = openSource(parseLocation(image), {
    pool: ctx.pool(),
    cache: await cacheFrom(ctx.flags, io),
    stdin: io.stdin,
    env: io.env,
  });
  try {
    const { platform, explicit } = platformFrom(ctx.flags);
    const sel = await selectImage(source, platform);
    if (explicit && sel.top === sel.instance) await assertPlatform(source, sel.manifest.config, platform);
    // Every layer read is checked against its diff_id too (exit 5 on a mismatch).
    const checked = await withDiffIds(source, sel);
    if (!show) return await fn(checked, source, () => {});
    // Every layer read is shown as it is read; the whole is known when every layer will be.
    const progress = ctx.progress({
      label: `${show.what} ${image}`,
      unit: 'layers',
      total: show.whole ? sel.totalSize : undefined,
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

/**
 * With a platform asked for explicitly: a source whose top level is one image (not an index) must
 * be of that platform (its config says); an index is left to the platform selection.
 */
export async function assertSourcePlatform(source: ImageSource, platform: Platform): Promise<void> {
  const top = await source.topManifest();
  const parsed = parseManifest(top.bytes, top.mediaType, source.name);
  if (parsed.kind === 'image') await assertPlatform(source, parsed.config, platform);
}

async function assertPlatform(
  source: ImageSource,
  configDesc: Descriptor,
  platform: Platform,
): Promise<void> {
  const config = parseConfig(
    await readAtMost(await source.blob(configDesc), Limits.config, `config of ${source.name}`),
    `config of ${source.name}`,
  );
  if (!config.architecture) return;
  const has: Platform = { os: config.os ?? 'linux', architecture: config.architecture };
  if (config.variant) has.variant = config.variant;
  if (selectPlatform(platform, [has]) === -1)
    throw new LadingError(
      ErrorCode.PlatformMismatch,
      `${source.name} is a single-platform image for ${formatPlatform(has)}, not ${formatPlatform(platform)}`,
      { expected: formatPlatform(platform), found: formatPlatform(has) },
    );
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
