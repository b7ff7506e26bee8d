import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BlobCache } from '../cache/index.ts';
import type { CliIo } from './io.ts';

export interface CacheFlags {
  cacheDir?: string;
  /** commander's `--no-cache` sets `cache: false`. */
  cache?: boolean;
}

export function withCacheOptions(cmd: Command): Command {
  return cmd
    .option('--cache-dir <dir>', 'cache of verified blobs and manifests (default $XDG_CACHE_HOME/lading)')
    .option('--no-cache', 'do not read or write the cache');
}

/** The cache root: --cache-dir, $LADING_CACHE_DIR, $XDG_CACHE_HOME/lading, ~/.cache/lading. */
export function cacheRoot(flags: CacheFlags, io: CliIo): string {
  if (flags.cacheDir) return flags.cacheDir;
  if (io.env.LADING_CACHE_DIR) return io.env.LADING_CACHE_DIR;
  const base = io.env.XDG_CACHE_HOME || join(io.env.HOME || homedir(), '.cache');
  return join(base, 'lading');
}

export async function cacheFrom(flags: CacheFlags, io: CliIo): Promise<BlobCache | undefined> {
  if (flags.cache === false) return undefined;
  return new BlobCache(cacheRoot(flags, io));
}
