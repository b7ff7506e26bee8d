import { openSource, type SelectedImage, selectImage } from '../copy/index.ts';
import { type ImageSource, parseLocation } from '../transports/index.ts';
import { type CacheFlags, cacheFrom } from './cache-options.ts';
import type { CommandContext } from './context.ts';
import type { CliIo } from './io.ts';
import { type PlatformFlags, platformFrom, type RegistryFlags } from './options.ts';

/**
 * Opens IMAGE (any transport), selects the asked platform's image, runs `fn` on it, and closes
 * the source: what unpack, export and extract share.
 */
export async function withImage<T>(
  ctx: CommandContext<PlatformFlags & CacheFlags & RegistryFlags>,
  io: CliIo,
  image: string,
  fn: (sel: SelectedImage, source: ImageSource) => Promise<T>,
): Promise<T> {
  const source = openSource(parseLocation(image), {
    pool: ctx.pool(),
    cache: await cacheFrom(ctx.flags, io),
    stdin: io.stdin,
    env: io.env,
  });
  try {
    return await fn(await selectImage(source, platformFrom(ctx.flags).platform), source);
  } finally {
    await source.close();
  }
}
