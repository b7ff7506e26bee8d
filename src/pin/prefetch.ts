import { type BlobCache, type IndexStore, isCorruptCacheEntry } from '../cache/index.ts';
import { copyImage } from '../copy/index.ts';
import { type Digest, digestHex, Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, hasCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  formatPlatform,
  type ImageSource,
  type Platform,
  parseConfig,
  type SelectedImage,
  selectImage,
} from '../image/index.ts';
import {
  fixName,
  makeFixedOutputPath,
  type NarNode,
  type NixHash,
  narHashOfTree,
  parseNixHash,
  sanitizeDerivationName,
  toSri,
} from '../nix/index.ts';
import { parseReference, type Reference } from '../reference/index.ts';
import type { RegistryPool } from '../registry/index.ts';
import {
  type ArchiveLayer,
  dockerArchiveHash,
  writeDockerArchive,
} from '../transports/docker-archive/index.ts';
import { DIR_VERSION, DirSink, RegistrySource } from '../transports/index.ts';
import { archiveHashOnePass } from './archive-pass.ts';
import { BlobFeed } from './blob-feed.ts';

export interface PrefetchInput {
  pool: RegistryPool;
  /** The image as the user named it (echoed as `imageName`). */
  imageName: string;
  /** Tag or digest; default `latest`. */
  tag?: string;
  digest?: Digest;
  platform: Platform;
  /**
   * Whether `platform` was asked for (default true): then a single-platform image of another
   * platform is an error instead of a result labelled with the wrong platform.
   */
  platformExplicit?: boolean;
  /** Pin the platform's manifest digest instead of the index digest (NixOS/nixpkgs#283098). */
  pinInstance?: boolean;
  /**
   * Name and tag written into the archive (`finalImageName`/`finalImageTag`). The tag defaults to
   * `tag` even when a digest is pinned (as nix-prefetch-docker does), else `latest`.
   */
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
  /**
   * Which hashes to compute (default both). Neither needs only the manifests (the manifest and
   * docker2nix outputs); the NAR hash alone needs no decompression.
   */
  want?: { dockerTools?: boolean; nix2container?: boolean };
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
  /**
   * Whether another image of the index has the same os/arch with another variant (arm/v6 beside
   * arm/v7): skopeo's `--override-arch` alone would then pick by its own variant order, so the
   * instance digest is pinned in `imageDigest` whatever `pinInstance` says.
   */
  variantAmbiguous: boolean;
  /**
   * Whether the registry was reached with TLS verification (false: plain HTTP, or
   * `--tls-verify=false`). The Nix pull functions then need `tlsVerify = false`.
   */
  tlsVerify: boolean;
  /** Whether the registry spoke plain HTTP. */
  plainHttp: boolean;
  platform: string;
  os: string;
  arch: string;
  variant?: string;
  finalImageName: string;
  finalImageTag: string;
  registry: string;
  repository: string;
  tag?: string;
  /** `dockerTools.pullImage`: flat sha256 of skopeo's docker-archive, its store name and path (when wanted). */
  dockerTools?: { hash: NixHash; size: number; name: string; storePath: string };
  /** `nix2container.pullImage`: NAR sha256 of skopeo's `dir:` layout, its store name and path (when wanted). */
  nix2container?: { hash: NixHash; name: string; storePath: string };
  /** The instance manifest bytes (the lock file of `nix2container.pullImageFromManifest`). */
  manifest: Buffer;
  config: Descriptor;
  layers: Descriptor[];
  /** Whether nothing had to be fetched or hashed: the results came from earlier runs. */
  cached: boolean;
  /** Compressed blob bytes fetched from the network in this run. */
  fetchedBytes: number;
}

interface CachedHashes {
  dockerTools?: string;
  size?: number;
  nix2container?: string;
}

const PREFETCH_CACHE_VERSION = 'prefetch-v1';

/** The `dockerTools.pullImage` result of a prefetch that wanted it. */
export function dockerToolsOf(r: PrefetchResult): NonNullable<PrefetchResult['dockerTools']> {
  if (!r.dockerTools)
    throw new LadingError(ErrorCode.Internal, 'prefetch did not compute the docker-archive hash');
  return r.dockerTools;
}

/** The `nix2container.pullImage` result of a prefetch that wanted it. */
export function nix2containerOf(r: PrefetchResult): NonNullable<PrefetchResult['nix2container']> {
  if (!r.nix2container) throw new LadingError(ErrorCode.Internal, 'prefetch did not compute the NAR hash');
  return r.nix2container;
}

/** The store name `dockerTools.pullImage` gives its output. */
export function pullImageName(finalImageName: string, finalImageTag: string): string {
  return sanitizeDerivationName(fixName(`docker-image-${finalImageName}-${finalImageTag}.tar`));
}

/** The store name `nix2container.pullImage` gives its output. */
export function nix2containerName(imageName: string): string {
  return sanitizeDerivationName(fixName(`docker-image-${imageName}`));
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
  const ref = requestedRef(input);
  const client = input.pool.forRef(ref);
  let fetchedBytes = 0;
  const source = new RegistrySource(client, ref, {
    cache: input.cache,
    onFetch: (n) => {
      fetchedBytes += n;
      input.onFetch?.(n);
    },
  });
  const sel = await selectImage(source, {
    platform: input.platform,
    explicit: input.platformExplicit ?? true,
    signal: input.signal,
  });
  const { instance } = sel;
  const finalImageName = input.finalImageName ?? input.imageName;
  // nix-prefetch-docker: --final-image-tag, else --image-tag, else latest, whatever the digest.
  const finalImageTag = input.finalImageTag ?? input.tag ?? 'latest';
  const finalRef = parseReference(`${finalImageName}:${finalImageTag}`);
  const repoTag = `${finalRef.name}:${finalRef.tag}`;
  const cacheKey = `${PREFETCH_CACHE_VERSION}:${instance.digest}:${repoTag}`;
  const wantFlat = input.want?.dockerTools !== false || input.archivePath !== undefined;
  const wantNar = input.want?.nix2container !== false;
  const hashes: CachedHashes =
    (input.index && !input.archivePath ? await input.index.get<CachedHashes>(cacheKey) : undefined) ?? {};
  const needFlat = wantFlat && (hashes.dockerTools === undefined || input.archivePath !== undefined);
  const needNar = wantNar && hashes.nix2container === undefined;
  const computed = needFlat || needNar;
  if (computed) {
    await computeHashes({ input, source, sel, what: String(ref), repoTag, needFlat, needNar }, hashes);
    await input.index?.set(cacheKey, hashes).catch(() => {});
  }
  if (input.dirPath) {
    // The instance alone, as skopeo writes it for one platform (blobs from the cache when there).
    const pinned: ImageSource = {
      name: source.name,
      topManifest: async () => instance,
      manifest: (d) => source.manifest(d),
      blob: (d, o) => source.blob(d, o),
      close: async () => {},
    };
    await copyImage(pinned, new DirSink(input.dirPath));
  }
  const base = await client.base(input.signal);
  return describe(input, sel, ref, {
    base,
    tlsVerify: base.protocol === 'https:' && client.http.tlsVerify,
    finalImageName,
    finalImageTag,
    flatHash: wantFlat && hashes.dockerTools ? parseNixHash(hashes.dockerTools) : undefined,
    flatSize: hashes.size ?? 0,
    narHash: wantNar && hashes.nix2container ? parseNixHash(hashes.nix2container) : undefined,
    cached: !computed,
    fetchedBytes,
  });
}

/** The reference to fetch: the name with the tag or digest given beside it. */
function requestedRef(input: PrefetchInput): Reference {
  const ref = parseReference(input.imageName, { defaultTag: null });
  if (ref.tag || ref.digest) {
    throw new LadingError(
      ErrorCode.BadReference,
      `give the image name without tag or digest (${input.imageName}); pass the tag or digest separately`,
      { ref: input.imageName },
    );
  }
  // The tag given beside a digest only names the result (finalImageTag); the digest is fetched.
  return input.digest ? ref.withDigest(input.digest) : ref.withTag(input.tag ?? 'latest');
}

/** What one prefetch computes the hashes from. */
interface HashJob {
  input: PrefetchInput;
  source: RegistrySource;
  sel: SelectedImage;
  /** The reference, for messages. */
  what: string;
  repoTag: string;
  needFlat: boolean;
  needNar: boolean;
}

/** Computes the wanted hashes into `hashes`, each blob fetched once (a BlobFeed). */
async function computeHashes(job: HashJob, hashes: CachedHashes): Promise<void> {
  const { input, sel, what } = job;
  const image = sel.manifest;
  const feed = new BlobFeed(job.source, input.cache, {
    ahead: Math.min(input.jobs ?? 6, 3),
    signal: input.signal,
  });
  // The layers' sizes are asked for while the config is read (for the flat hash's tar headers).
  const hints = job.needFlat ? sizeHints(job) : undefined;
  const configBytes = await readAtMost(await feed.openBlob(image.config), Limits.config, `config of ${what}`);
  const work: Promise<void>[] = [];
  if (hints)
    work.push(
      archiveHash(job, feed, configBytes, hints).then((archive) => {
        hashes.dockerTools = toSri(parseNixHash(archive.sha256));
        hashes.size = archive.size;
      }),
    );
  if (job.needNar)
    work.push(
      dirNarHash(job, feed, configBytes).then((nar) => {
        hashes.nix2container = toSri(nar);
      }),
    );
  await Promise.all(work);
  if (input.dirPath) await feed.all(dedupe([image.config, ...image.layers]));
}

/**
 * The flat hash of skopeo's docker-archive (written to `archivePath` when asked). The hash alone
 * is one ordered pass per layer, socket to hashes (archive-pass.ts); else the layers in archive
 * order: the bottom one streams from the registry while the hashes work on it, the ones above
 * download into the cache meanwhile.
 */
async function archiveHash(
  job: HashJob,
  feed: BlobFeed,
  configBytes: Buffer,
  hints: Map<string, Promise<number | undefined>>,
): Promise<{ sha256: Digest; size: number }> {
  const { input, source, what } = job;
  const image = job.sel.manifest;
  const config = parseConfig(configBytes, `config of ${what}`);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== image.layers.length) {
    throw new LadingError(
      ErrorCode.ManifestInvalid,
      `${what}: the config lists ${diffIds.length} diff_ids for ${image.layers.length} layers`,
    );
  }
  const single = isSinglePass(job);
  if (!single) await feed.plan(image.layers);
  const archiveInput = (hinted: boolean) => ({
    configBytes,
    layers: image.layers.map(
      (l, i): ArchiveLayer => ({
        diffId: diffIds[i]!,
        // Checked while streaming; measured when absent or wrong.
        sizeHint: hinted ? () => hints.get(l.digest)! : undefined,
        open: () => feed.openLayer(l),
      }),
    ),
    repoTags: [job.repoTag],
    jobs: input.jobs,
  });
  const flat = async (hinted: boolean) => {
    if (single) await feed.plan(image.layers);
    return input.archivePath
      ? writeDockerArchive(archiveInput(hinted), input.archivePath)
      : dockerArchiveHash(archiveInput(hinted));
  };
  try {
    const pass = single
      ? await onePass(source, configBytes, image.layers, diffIds, hints, job.repoTag, input.signal)
      : undefined;
    return pass ?? (await flat(true));
  } catch (err) {
    // A gzip trailer that lied (multi-member gzip): measure the layers instead.
    if (!hasCode(err, ErrorCode.SizeMismatch)) throw err;
    return flat(false);
  }
}

/** Whether the flat hash is all there is to make: then it is one pass, socket to hashes. */
function isSinglePass(job: HashJob): boolean {
  return !job.input.archivePath && !job.needNar;
}

/**
 * The gzip trailers' sizes (a Range request each, or the cached file), asked for at once. For the
 * one pass, the bottom layer's GET goes out with them (it is read as soon as they are in).
 */
function sizeHints(job: HashJob): Map<string, Promise<number | undefined>> {
  const { source, input } = job;
  const layers = job.sel.manifest.layers;
  const hints = new Map<string, Promise<number | undefined>>();
  for (const l of layers)
    if (!hints.has(l.digest))
      hints.set(
        l.digest,
        source.layerSizeHint(l, input.signal).catch(() => undefined),
      );
  if (isSinglePass(job) && layers[0]) source.prepareBlob(layers[0], input.signal);
  return hints;
}

/**
 * The NAR hash of skopeo's `dir:` layout, in the NAR's (byte-wise sorted) order; without the flat
 * hash the blobs stream in that order, the first one straight from the registry.
 */
async function dirNarHash(job: HashJob, feed: BlobFeed, configBytes: Buffer): Promise<NixHash> {
  const { instance, manifest: image } = job.sel;
  const blobs = dedupe([image.config, ...image.layers]);
  const sorted = [...blobs].sort((a, b) => (digestHex(a.digest) < digestHex(b.digest) ? -1 : 1));
  if (!job.needFlat) await feed.plan(sorted.filter((d) => d.digest !== image.config.digest));
  const entries: Record<string, NarNode> = {
    'manifest.json': { type: 'regular', size: instance.bytes.length, contents: instance.bytes },
    version: {
      type: 'regular',
      size: Buffer.byteLength(DIR_VERSION),
      contents: Buffer.from(DIR_VERSION),
    },
  };
  for (const d of blobs)
    entries[digestHex(d.digest)] = {
      type: 'regular',
      size: d.size,
      contents:
        d.digest === image.config.digest
          ? configBytes
          : async () => {
              // Beside the flat hash, read each blob once it is cached (never a second download).
              if (job.needFlat) await feed.all([d]);
              return feed.openBlob(d);
            },
    };
  return (await narHashOfTree({ type: 'directory', entries })).hash;
}

/** The result, from what the prefetch selected and computed. */
function describe(
  input: PrefetchInput,
  sel: SelectedImage,
  ref: Reference,
  got: {
    base: URL;
    tlsVerify: boolean;
    finalImageName: string;
    finalImageTag: string;
    flatHash: NixHash | undefined;
    flatSize: number;
    narHash: NixHash | undefined;
    cached: boolean;
    fetchedBytes: number;
  },
): PrefetchResult {
  const { top, instance, index, manifest: image } = sel;
  const chosenPlatform = sel.descriptor?.platform;
  const os = chosenPlatform?.os ?? input.platform.os;
  const arch = chosenPlatform?.architecture ?? input.platform.architecture;
  const variant = chosenPlatform?.variant ?? input.platform.variant;
  const variantAmbiguous =
    index?.manifests.some(
      (d) =>
        d.digest !== instance.digest &&
        d.platform?.os === os &&
        d.platform?.architecture === arch &&
        (d.platform?.variant ?? '') !== (variant ?? ''),
    ) === true;
  const { flatHash, narHash } = got;
  const dtName = pullImageName(got.finalImageName, got.finalImageTag);
  const n2cName = nix2containerName(input.imageName);
  return {
    imageName: input.imageName,
    imageDigest: input.pinInstance || variantAmbiguous ? instance.digest : top.digest,
    topDigest: top.digest,
    indexDigest: index ? top.digest : undefined,
    instanceDigest: instance.digest,
    variantAmbiguous,
    tlsVerify: got.tlsVerify,
    plainHttp: got.base.protocol === 'http:',
    platform: formatPlatform({ os, architecture: arch, ...(variant ? { variant } : {}) }),
    os,
    arch,
    variant,
    finalImageName: got.finalImageName,
    finalImageTag: got.finalImageTag,
    registry: ref.registry,
    repository: ref.repository,
    tag: ref.tag,
    dockerTools: flatHash && {
      hash: flatHash,
      size: got.flatSize,
      name: dtName,
      storePath: makeFixedOutputPath({ method: 'flat', hash: flatHash, name: dtName }),
    },
    nix2container: narHash && {
      hash: narHash,
      name: n2cName,
      storePath: makeFixedOutputPath({ method: 'recursive', hash: narHash, name: n2cName }),
    },
    manifest: instance.bytes,
    config: image.config,
    layers: image.layers,
    cached: got.cached,
    fetchedBytes: got.fetchedBytes,
  };
}

/** {@link archiveHashOnePass} when every layer's size is hinted; undefined otherwise. */
async function onePass(
  source: RegistrySource,
  configBytes: Buffer,
  layers: Descriptor[],
  diffIds: Digest[],
  hints: Map<string, Promise<number | undefined>>,
  repoTag: string,
  signal?: AbortSignal,
): Promise<{ sha256: Digest; size: number } | undefined> {
  const sizes = await Promise.all(layers.map((l) => hints.get(l.digest)!));
  if (sizes.some((n) => n === undefined)) return undefined;
  return archiveHashOnePass({
    source,
    configBytes,
    layers: layers.map((desc, i) => ({ desc, diffId: diffIds[i]!, size: sizes[i]! })),
    repoTags: [repoTag],
    signal,
  });
}

function dedupe(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    if (seen.has(d.digest)) return false;
    seen.add(d.digest);
    return true;
  });
}
