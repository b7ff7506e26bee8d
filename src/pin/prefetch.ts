import { open } from 'node:fs/promises';
import { type BlobCache, type IndexStore, isCorruptCacheEntry } from '../cache/index.ts';
import { copyImage } from '../copy/index.ts';
import { type Digest, digestHex } from '../digest/index.ts';
import { ErrorCode, hasCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  formatPlatform,
  type ImageManifest,
  type Platform,
  parseConfig,
  parseManifest,
  selectPlatform,
} from '../image/index.ts';
import { decompressRing } from '../layers/index.ts';
import {
  fixName,
  makeFixedOutputPath,
  type NarNode,
  type NixHash,
  narHashOfTree,
  parseNixHash,
  toSri,
} from '../nix/index.ts';
import { parseReference, type Reference } from '../reference/index.ts';
import type { RegistryPool } from '../registry/index.ts';
import {
  type ArchiveLayer,
  dockerArchiveHash,
  writeDockerArchive,
} from '../transports/docker-archive/index.ts';
import { DIR_VERSION, DirSink, type ImageSource, RegistrySource } from '../transports/index.ts';
import { Limiter } from '../util/index.ts';

export interface PrefetchInput {
  pool: RegistryPool;
  /** The image as the user named it (echoed as `imageName`). */
  imageName: string;
  /** Tag or digest; default `latest`. */
  tag?: string;
  digest?: Digest;
  platform: Platform;
  /** Pin the platform's manifest digest instead of the index digest (NixOS/nixpkgs#283098). */
  pinInstance?: boolean;
  /** Name and tag written into the archive (`finalImageName`/`finalImageTag`). */
  finalImageName?: string;
  finalImageTag?: string;
  /** Verified blobs are staged here (required: hashing reads each blob more than once). */
  cache: BlobCache;
  /** Computed hashes are remembered here, so a repeated prefetch only sends a HEAD. */
  index?: IndexStore;
  /** Also write the docker-archive here. */
  archivePath?: string;
  /** Also write the skopeo `dir:` layout here. */
  dirPath?: string;
  jobs?: number;
  signal?: AbortSignal;
  /** Progress: bytes fetched from the network. */
  onFetch?: (bytes: number) => void;
}

/** Everything a prefetch learns; the renderers print subsets of it. */
export interface PrefetchResult {
  imageName: string;
  /** The digest to pin: the top-level one (index for multi-arch), or the instance with pinInstance. */
  imageDigest: Digest;
  /** Digest of the top-level manifest (the index for multi-arch images). */
  topDigest: Digest;
  /** Set when the top level is an index or manifest list. */
  indexDigest?: Digest;
  /** The chosen platform's image manifest digest. */
  instanceDigest: Digest;
  platform: string;
  os: string;
  arch: string;
  variant?: string;
  finalImageName: string;
  finalImageTag: string;
  registry: string;
  repository: string;
  tag?: string;
  /** `dockerTools.pullImage`: flat sha256 of skopeo's docker-archive, its store name and path. */
  dockerTools: { hash: NixHash; size: number; name: string; storePath: string };
  /** `nix2container.pullImage`: NAR sha256 of skopeo's `dir:` layout, its store name and path. */
  nix2container: { hash: NixHash; name: string; storePath: string };
  /** The instance manifest bytes (the lock file of `nix2container.pullImageFromManifest`). */
  manifest: Buffer;
  config: Descriptor;
  layers: Descriptor[];
  /** Whether the hashes came from the cache of earlier runs. */
  cached: boolean;
  /** Compressed blob bytes fetched from the network in this run. */
  fetchedBytes: number;
}

interface CachedHashes {
  dockerTools: string;
  size: number;
  nix2container: string;
}

const PREFETCH_CACHE_VERSION = 'prefetch-v1';

/** The uncompressed size a gzip trailer states (see the checks below). */
async function gzipSizeHint(cache: BlobCache, d: Descriptor): Promise<number | undefined> {
  // ISIZE is the size modulo 2^32 and covers the last gzip member only: a guess that the archive
  // writer checks while streaming (a wrong one fails with E_SIZE_MISMATCH and the layers are measured).
  if (d.size < 18) return undefined;
  try {
    const fh = await open(cache.pathFor(d.digest), 'r');
    try {
      const head = Buffer.alloc(2);
      await fh.read(head, 0, 2, 0);
      if (head[0] !== 0x1f || head[1] !== 0x8b) return undefined;
      const tail = Buffer.alloc(4);
      await fh.read(tail, 0, 4, d.size - 4);
      return tail.readUInt32LE(0);
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

/** The store name `dockerTools.pullImage` gives its output. */
export function pullImageName(finalImageName: string, finalImageTag: string): string {
  return fixName(`docker-image-${finalImageName}-${finalImageTag}.tar`);
}

/** The store name `nix2container.pullImage` gives its output. */
export function nix2containerName(imageName: string): string {
  return fixName(`docker-image-${imageName}`);
}

/** Selects the platform's image from an index, or checks nothing for a single image. */
async function selectInstance(source: ImageSource, platform: Platform, what: string, signal?: AbortSignal) {
  const top = await source.topManifest(signal);
  const parsed = parseManifest(top.bytes, top.mediaType, what);
  if (parsed.kind === 'schema1') {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `${what} is a Docker schema1 manifest, which Nix's pull functions cannot use`,
    );
  }
  if (parsed.kind === 'image') return { top, instance: top, image: parsed, index: undefined };
  const i = selectPlatform(
    platform,
    parsed.manifests.map((d) => d.platform),
  );
  const chosen = parsed.manifests[i];
  if (!chosen) {
    const have = parsed.manifests
      .map((d) => (d.platform ? formatPlatform(d.platform) : d.digest))
      .filter((p) => p !== 'unknown/unknown');
    throw new LadingError(
      ErrorCode.NoMatchingPlatform,
      `no image for platform ${formatPlatform(platform)} in ${what}; it has: ${have.join(', ')}`,
      {
        expected: formatPlatform(platform),
        found: have.join(', '),
      },
    );
  }
  const instance = await source.manifest(chosen.digest, signal);
  const image = parseManifest(instance.bytes, instance.mediaType, `${what}@${chosen.digest}`);
  if (image.kind !== 'image') {
    throw new LadingError(ErrorCode.ManifestUnsupported, `${what}@${chosen.digest} is not an image manifest`);
  }
  return { top, instance, image: image as ImageManifest, index: parsed };
}

/**
 * Computes what `dockerTools.pullImage` and `nix2container.pullImage` need, without Nix or
 * skopeo: blobs are fetched once (verified, in parallel) into the cache, then the docker-archive
 * and the `dir:` layout are hashed while streaming, without being written (unless asked).
 */
export async function prefetch(input: PrefetchInput): Promise<PrefetchResult> {
  try {
    return await prefetchOnce(input);
  } catch (err) {
    // A cache entry found corrupt has been removed: a second pass fetches it afresh.
    if (!isCorruptCacheEntry(err)) throw err;
    return prefetchOnce(input);
  }
}

async function prefetchOnce(input: PrefetchInput): Promise<PrefetchResult> {
  let ref: Reference = parseReference(input.imageName, { defaultTag: null });
  if (ref.tag || ref.digest) {
    throw new LadingError(
      ErrorCode.BadReference,
      `give the image name without tag or digest (${input.imageName}); pass the tag or digest separately`,
      {
        ref: input.imageName,
      },
    );
  }
  ref = input.digest ? ref.withDigest(input.digest) : ref.withTag(input.tag ?? 'latest');
  const what = String(ref);
  const client = input.pool.forRef(ref);
  let fetchedBytes = 0;
  const source = new RegistrySource(client, ref, {
    cache: input.cache,
    onFetch: (n) => {
      fetchedBytes += n;
      input.onFetch?.(n);
    },
  });
  const { top, instance, image, index } = await selectInstance(source, input.platform, what, input.signal);
  const finalImageName = input.finalImageName ?? input.imageName;
  const finalImageTag = input.finalImageTag ?? (input.digest ? 'latest' : (input.tag ?? 'latest'));
  const finalRef = parseReference(`${finalImageName}:${finalImageTag}`);
  const repoTag = `${finalRef.name}:${finalRef.tag}`;
  const blobs = dedupe([image.config, ...image.layers]);
  const cacheKey = `${PREFETCH_CACHE_VERSION}:${instance.digest}:${repoTag}`;
  const cached =
    input.index && !input.archivePath && !input.dirPath
      ? await input.index.get<CachedHashes>(cacheKey)
      : undefined;
  let configBytes: Buffer | undefined;
  let hashes: CachedHashes;
  if (cached) {
    hashes = cached;
  } else {
    // Every blob is fetched once into the cache (verified, in parallel, largest first); hashing
    // starts as soon as the blobs it needs have arrived, so downloads and hashing overlap.
    // In layer order, a few at a time: the archive hash needs the bottom layer first, and it can
    // start on it while the layers above are still arriving.
    const limiter = new Limiter(Math.min(input.jobs ?? 6, 3));
    const arrivals = new Map<string, Promise<void>>();
    for (const d of blobs) {
      const p = limiter.run(() => source.ensureCached(d, input.signal));
      p.catch(() => {});
      arrivals.set(d.digest, p);
    }
    const arrived = (d: Descriptor): Promise<void> => arrivals.get(d.digest)!;
    await arrived(image.config);
    configBytes = await readBlob(source, image.config);
    const config = parseConfig(configBytes, `config of ${what}`);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== image.layers.length) {
      throw new LadingError(
        ErrorCode.ManifestInvalid,
        `${what}: the config lists ${diffIds.length} diff_ids for ${image.layers.length} layers`,
      );
    }
    const archiveInput = (hinted: boolean) => ({
      configBytes: configBytes!,
      layers: image.layers.map(
        (l, i): ArchiveLayer => ({
          diffId: diffIds[i]!,
          // The gzip trailer's size, checked while streaming; measured when absent or wrong.
          sizeHint: hinted
            ? async () => {
                await arrived(l);
                return gzipSizeHint(input.cache, l);
              }
            : undefined,
          open: async () => {
            await arrived(l);
            return decompressRing(input.cache.chunks(l.digest, l.size));
          },
        }),
      ),
      repoTags: [repoTag],
      jobs: input.jobs,
    });
    const flat = (hinted: boolean) =>
      input.archivePath
        ? writeDockerArchive(archiveInput(hinted), input.archivePath)
        : dockerArchiveHash(archiveInput(hinted));
    const archiveHash = async (): Promise<{ sha256: Digest; size: number }> => {
      try {
        return await flat(true);
      } catch (err) {
        // A gzip trailer that lied (multi-member gzip): measure the layers instead.
        if (!hasCode(err, ErrorCode.SizeMismatch)) throw err;
        return flat(false);
      }
    };
    const entries: Record<string, NarNode> = {
      'manifest.json': { type: 'regular', size: instance.bytes.length, contents: instance.bytes },
      version: { type: 'regular', size: Buffer.byteLength(DIR_VERSION), contents: Buffer.from(DIR_VERSION) },
    };
    for (const d of blobs)
      entries[digestHex(d.digest)] = {
        type: 'regular',
        size: d.size,
        // Hashed as it is read, through one reused buffer (no garbage per chunk).
        contents: async () => {
          await arrived(d);
          return input.cache.chunks(d.digest, d.size);
        },
      };
    // The two hashes run side by side: decompression happens on libuv's pool, hashing here.
    const [archive, nar] = await Promise.all([
      archiveHash(),
      narHashOfTree({ type: 'directory', entries }),
      Promise.all(arrivals.values()),
    ]);
    hashes = {
      dockerTools: toSri(parseNixHash(archive.sha256)),
      size: archive.size,
      nix2container: toSri(nar.hash),
    };
    if (input.dirPath) {
      // The instance alone, as skopeo writes it for one platform.
      const inst = instance;
      const pinned: ImageSource = {
        name: source.name,
        topManifest: async () => inst,
        manifest: (d) => source.manifest(d),
        blob: (d, o) => source.blob(d, o),
        close: async () => {},
      };
      await copyImage(pinned, new DirSink(input.dirPath));
    }
    await input.index?.set(cacheKey, hashes).catch(() => {});
  }
  const flatHash = parseNixHash(hashes.dockerTools);
  const narHash = parseNixHash(hashes.nix2container);
  const chosenPlatform = index
    ? index.manifests.find((d) => d.digest === instance.digest)?.platform
    : undefined;
  const os = chosenPlatform?.os ?? input.platform.os;
  const arch = chosenPlatform?.architecture ?? input.platform.architecture;
  const variant = chosenPlatform?.variant ?? input.platform.variant;
  const dtName = pullImageName(finalImageName, finalImageTag);
  const n2cName = nix2containerName(input.imageName);
  return {
    imageName: input.imageName,
    imageDigest: input.pinInstance ? instance.digest : top.digest,
    topDigest: top.digest,
    indexDigest: index ? top.digest : undefined,
    instanceDigest: instance.digest,
    platform: formatPlatform({ os, architecture: arch, ...(variant ? { variant } : {}) }),
    os,
    arch,
    variant,
    finalImageName,
    finalImageTag,
    registry: ref.registry,
    repository: ref.repository,
    tag: ref.tag,
    dockerTools: {
      hash: flatHash,
      size: hashes.size,
      name: dtName,
      storePath: makeFixedOutputPath({ method: 'flat', hash: flatHash, name: dtName }),
    },
    nix2container: {
      hash: narHash,
      name: n2cName,
      storePath: makeFixedOutputPath({ method: 'recursive', hash: narHash, name: n2cName }),
    },
    manifest: instance.bytes,
    config: image.config,
    layers: image.layers,
    cached: configBytes === undefined,
    fetchedBytes,
  };
}

async function readBlob(source: ImageSource, d: Descriptor): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await source.blob(d)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function dedupe(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    if (seen.has(d.digest)) return false;
    seen.add(d.digest);
    return true;
  });
}
