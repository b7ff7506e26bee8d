import { tmpdir } from 'node:os';
import type { BlobCache, IndexStore } from '../cache/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type Platform, parsePlatform } from '../image/index.ts';
import { parseReference } from '../reference/index.ts';
import type { ManifestHead, RegistryPool } from '../registry/index.ts';
import { RegistrySource } from '../transports/index.ts';
import { mapLimit } from '../util/index.ts';
import {
  checkLockName,
  defaultLockName,
  type LockEntry,
  lockEntryFrom,
  readLock,
  writeLock,
} from './lock.ts';
import { type DecidingLayer, decidingLayers } from './lock-extract.ts';
import { type PrefetchResult, prefetch } from './prefetch.ts';

// The lock-file operations behind `lading lock add|update|remove`, for library users: the same
// checks, the same decisions about what to fetch again, the same file written.

/** Where the lock operations fetch from and keep what they fetched. */
export interface LockOptions {
  pool: RegistryPool;
  /** Verified blobs are staged here (pinning hashes each blob more than once). */
  cache: BlobCache;
  /** Computed hashes are remembered here, so pinning an unchanged image again only sends a HEAD. */
  index?: IndexStore;
  jobs?: number;
  /** Where `extract` unpacks the layers it reads to decide its paths (default the OS temp dir). */
  tmpDir?: string;
  signal?: AbortSignal;
}

export interface LockAddRequest {
  /** An image with a tag (`alpine:3.20`, `ghcr.io/org/app:1.4`); a digest is refused: a lock tracks a tag. */
  image: string;
  /** The entry name (default: the repository's last path component). */
  name?: string;
  /** Replace an entry of the same name; without it that is an error, raised before anything is fetched. */
  force?: boolean;
  /**
   * The platform to pin (default linux/amd64). When given, a single-platform image of another
   * platform is refused instead of recorded under the wrong platform.
   */
  platform?: Platform;
  /** Pin the platform's manifest digest instead of the index digest. */
  pinInstance?: boolean;
  finalImageName?: string;
  finalImageTag?: string;
  /** False: no layer fetched and no hashes recorded (lading's fetchImage needs none). Default true. */
  hash?: boolean;
  /** Record the layer deciding each path (only the layers above it are read). */
  extract?: string[];
}

export interface LockAdded {
  name: string;
  entry: LockEntry;
  /** The prefetch the entry was made from (`fetchedBytes`: what was downloaded to pin it). */
  prefetch: PrefetchResult;
}

/** What `updateLock` decided for one entry. */
export interface LockUpdate {
  name: string;
  /** Whether the entry was re-pinned to another image or hash. */
  changed: boolean;
  /** The entry before the update. */
  previous: LockEntry;
  /** The entry after it (`previous` when unchanged). */
  entry: LockEntry;
  /** Set when the tag had moved and the image was fetched again (even if it pinned the same). */
  prefetch?: PrefetchResult;
}

export interface LockUpdateOptions extends LockOptions {
  /** Called for each entry once decided, in order, before the file is written. */
  onEntry?: (update: LockUpdate) => void | Promise<void>;
}

/** How an entry is pinned: from `lock add`'s request, or again from an entry by `lock update`. */
interface PinInput {
  imageName: string;
  tag: string;
  platform: Platform;
  /** Asked for explicitly: a single-platform image of another platform is refused. */
  platformExplicit: boolean;
  pinInstance: boolean;
  finalImageName?: string;
  finalImageTag?: string;
  hash: boolean;
  extract: string[];
}

/** How many HEAD requests `updateLock` has in flight at once. */
const HEAD_CONCURRENCY = 8;

/**
 * Pins an image by tag and adds it to the lock file at `path` (created if missing). An entry of
 * the same name is replaced only with `force`; that is checked before anything is fetched.
 */
export async function addToLock(path: string, req: LockAddRequest, opts: LockOptions): Promise<LockAdded> {
  const ref = parseReference(req.image);
  if (ref.digest)
    throw new LadingError(ErrorCode.BadArgument, 'lock add tracks a tag; give IMAGE:TAG, not a digest');
  const name = req.name ?? defaultLockName(ref.repository);
  checkLockName(name);
  const at = req.image.lastIndexOf(':');
  const imageName = ref.tag && at > req.image.lastIndexOf('/') ? req.image.slice(0, at) : req.image;
  const file = await readLock(path);
  // Another image under the same name is never replaced silently.
  const existing = file.images[name];
  if (existing && !req.force)
    throw new LadingError(
      ErrorCode.Exists,
      `${path} already has an entry ${JSON.stringify(name)} (${existing.source}); choose another with --name, or replace it with --force`,
      { path },
    );
  const { entry, prefetch } = await pin(
    {
      imageName,
      tag: ref.tag ?? 'latest',
      platform: req.platform ?? parsePlatform('linux/amd64'),
      platformExplicit: req.platform !== undefined,
      pinInstance: req.pinInstance === true,
      finalImageName: req.finalImageName,
      finalImageTag: req.finalImageTag,
      hash: req.hash !== false,
      extract: req.extract ?? [],
    },
    opts,
  );
  file.images[name] = entry;
  await writeLock(path, file);
  return { name, entry, prefetch };
}

/**
 * HEAD-checks the tag of every entry (or of `names`) and re-pins those whose tag moved, as they
 * were pinned (platform, pinInstance, names, with or without hashes, the same extract paths).
 * The file is written only when an entry changed; an unknown name is an error before any request.
 */
export async function updateLock(
  path: string,
  names: string[],
  opts: LockUpdateOptions,
): Promise<LockUpdate[]> {
  const file = await readLock(path);
  const targets = names.length ? names : Object.keys(file.images).sort();
  const entries = targets.map((name) => {
    const e = file.images[name];
    if (!e) throw new LadingError(ErrorCode.NotFound, `no entry ${JSON.stringify(name)} in ${path}`);
    return e;
  });
  // Every tag is HEAD-checked at once (a few at a time); only what moved is fetched again.
  const heads = await mapLimit(entries, HEAD_CONCURRENCY, (e) => headOf(e, opts));
  const updates: LockUpdate[] = [];
  for (const [i, name] of targets.entries()) {
    const u = await updateEntry(name, entries[i]!, heads[i]!, opts);
    if (u.changed) file.images[name] = u.entry;
    updates.push(u);
    await opts.onEntry?.(u);
  }
  if (updates.some((u) => u.changed)) await writeLock(path, file);
  return updates;
}

/** Removes entries from the lock file; an unknown name is an error and nothing is written. */
export async function removeFromLock(path: string, names: string[]): Promise<void> {
  const file = await readLock(path);
  for (const n of names) {
    if (!file.images[n])
      throw new LadingError(ErrorCode.NotFound, `no entry ${JSON.stringify(n)} in ${path}`);
    delete file.images[n];
  }
  await writeLock(path, file);
}

async function headOf(e: LockEntry, opts: LockOptions): Promise<ManifestHead> {
  const ref = parseReference(e.source);
  const head = await opts.pool.forRef(ref).headManifest(ref, opts.signal);
  if (!head) throw new LadingError(ErrorCode.NotFound, `${e.source} no longer exists`, { ref: e.source });
  return head;
}

async function updateEntry(
  name: string,
  e: LockEntry,
  head: ManifestHead,
  opts: LockOptions,
): Promise<LockUpdate> {
  const unchanged = { name, changed: false, previous: e, entry: e };
  if (head.digest && head.digest === (e.indexDigest ?? e.instanceDigest)) return unchanged;
  const next = await pin(
    {
      imageName: e.imageName,
      tag: e.tag,
      platform: parsePlatform(e.platform),
      // The entry's platform may be the default: re-pinned as it was added.
      platformExplicit: false,
      pinInstance: e.pinInstance,
      finalImageName: e.finalImageName,
      finalImageTag: e.finalImageTag,
      hash: e.dockerTools !== undefined,
      extract: Object.keys(e.extract ?? {}),
    },
    opts,
  );
  // A HEAD digest can move without the pin moving (an index re-pushed with the same images).
  if (next.entry.imageDigest === e.imageDigest && next.entry.dockerTools?.hash === e.dockerTools?.hash)
    return { ...unchanged, prefetch: next.prefetch };
  return { name, changed: true, previous: e, entry: next.entry, prefetch: next.prefetch };
}

/** Prefetches one image and makes its lock entry (with the deciding layers of `extract`). */
async function pin(
  input: PinInput,
  opts: LockOptions,
): Promise<{ entry: LockEntry; prefetch: PrefetchResult }> {
  const r = await prefetch({
    pool: opts.pool,
    imageName: input.imageName,
    tag: input.tag,
    platform: input.platform,
    platformExplicit: input.platformExplicit,
    pinInstance: input.pinInstance,
    finalImageName: input.finalImageName,
    finalImageTag: input.finalImageTag,
    cache: opts.cache,
    index: opts.index,
    jobs: opts.jobs,
    signal: opts.signal,
    ...(input.hash ? {} : { want: { dockerTools: false, nix2container: false } }),
  });
  const entry = lockEntryFrom(r, input.tag, input.pinInstance);
  if (input.extract.length) entry.extract = await recordExtract(r, input.extract, opts);
  return { entry, prefetch: r };
}

/** The layer deciding each path, reading the pinned instance's layers from the top only. */
async function recordExtract(
  r: PrefetchResult,
  paths: string[],
  opts: LockOptions,
): Promise<Record<string, DecidingLayer>> {
  const ref = parseReference(`${r.registry}/${r.repository}@${r.instanceDigest}`);
  const source = new RegistrySource(opts.pool.forRef(ref), ref, { cache: opts.cache });
  try {
    return await decidingLayers(source, r.layers, paths, opts.tmpDir ?? tmpdir(), opts.signal);
  } finally {
    await source.close();
  }
}
