import { type ImageLayers, imageLayers, openSource, withDiffIds } from '../copy/index.ts';
import { type ImageSource, selectImage } from '../image/index.ts';
import { parseLocation } from '../transports/index.ts';
import { type CacheFlags, cacheFrom } from './cache-options.ts';
import type { CommandContext } from './context.ts';
import type { CliIo } from './io.ts';
import { type PlatformFlags, platformFrom, type RegistryFlags } from './options.ts';

/**
 * Opens IMAGE (any transport), selects the asked platform's image, runs `fn` on it, and closes
 * the source: what unpack, export and extract share. The platform policy is the library's
 * ({@link selectImage}): with `--platform` (or `--override-*`), a single-platform image of another
 * platform is an error. The config's diff_ids are attached to the layers, so every layer read is
 * verified uncompressed too.
 */
export async function withImage<T>(
  ctx: CommandContext<PlatformFlags & CacheFlags & RegistryFlags>,
  io: CliIo,
  image: string,
  fn: (sel: ImageLayers, source: ImageSource) => Promise<T>,
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
    return await fn(await withDiffIds(source, imageLayers(source, sel)), source);
  } finally {
    await source.close();
  }
}
