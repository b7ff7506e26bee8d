import { tmpdir } from 'node:os';
import { BlobCache } from '../../cache/index.ts';
import { type DecidingLayer, decidingLayers, type PrefetchResult } from '../../pin/index.ts';
import { parseReference } from '../../reference/index.ts';
import { RegistrySource } from '../../transports/index.ts';
import type { CommandContext } from '../context.ts';
import { type CliIo, writeLine } from '../io.ts';
import type { RegistryFlags } from '../options.ts';
import { formatBytes } from '../render/progress.ts';

/** `lock add --extract PATH…`: the layer deciding each path, reading layers from the top only. */
export async function recordExtract(
  ctx: CommandContext<RegistryFlags>,
  r: PrefetchResult,
  paths: string[],
  cacheRoot: string,
): Promise<Record<string, DecidingLayer>> {
  const ref = parseReference(`${r.registry}/${r.repository}@${r.instanceDigest}`);
  const source = new RegistrySource(ctx.pool().forRef(ref), ref, { cache: new BlobCache(cacheRoot) });
  try {
    return await decidingLayers(source, r.layers, paths, ctx.io.env.TMPDIR || tmpdir());
  } finally {
    await source.close();
  }
}

/** `lock add --no-hash`: how much of the image was not downloaded to pin it. */
export async function reportNotFetched(io: CliIo, r: PrefetchResult): Promise<void> {
  const total = [r.config, ...r.layers].reduce((n, d) => n + d.size, 0);
  const skipped = Math.max(0, total - r.fetchedBytes);
  await writeLine(
    io.err,
    `lading: --no-hash: ${skipped} bytes (${formatBytes(skipped)}) of blobs not fetched; fetchImage fetches each blob in Nix by its digest`,
  );
}
