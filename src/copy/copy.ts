import { type BlobInfoCache, isCorruptCacheEntry } from '../cache/index.ts';
import { type Digest, sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  convertIndex,
  type Descriptor,
  hostPlatform,
  type ImageManifest,
  type IndexManifest,
  isFormat,
  type ManifestFormat,
  type Platform,
  parseConfig,
  parseManifest,
  selectFromIndex,
  selectImage,
} from '../image/index.ts';
import type { Compression } from '../layers/index.ts';
import type {
  BlobSink,
  ImageSink,
  ImageSource,
  RawManifest,
  ReuseOutcome,
  WholeImage,
  WholeImageSink,
} from '../transports/index.ts';
import { BlobReuse } from './blob-reuse.ts';
import { checkCompressLevel } from './compress-level.ts';
import {
  convertImage,
  optionsFor,
  refuseIfPreserving,
  refuseRecompressIfPreserving,
} from './convert-image.ts';
import { effectiveLevel, layerBytesCompression, layerTarget } from './layer-bytes.ts';
import { layerCompression, layerMediaType, recompressStream, Staging } from './recompress.ts';
import { sha256Tap } from './sha256-tap.ts';
import { mapLimit, readAtMostFrom } from './util.ts';

/** What the orchestrator reports while it works (rendered by the CLI's progress display). */
export type CopyEvent =
  | { type: 'blob-start'; digest: Digest; size: number; mediaType: string }
  | { type: 'blob-progress'; digest: Digest; bytes: number }
  | { type: 'blob-done'; digest: Digest; size: number }
  | { type: 'blob-skip'; digest: Digest; size: number; reason: 'exists' | 'mounted' }
  | { type: 'manifest'; digest: Digest; mediaType: string };

export interface CopyOptions {
  /**
   * Platforms to copy from an index (default: the host's). Several keep an index of just those.
   * Given, they are asked for explicitly: one platform and a single-platform source of another
   * platform is an error (E_PLATFORM_MISMATCH), as in every command ({@link selectImage}).
   */
  platforms?: Platform[];
  /** Copy the whole index, every platform, unchanged. */
  all?: boolean;
  /** Parallel blob transfers (default 6). */
  jobs?: number;
  /**
   * Convert manifests to this format (digests change); default: keep them as they are, except
   * Docker ones written to an OCI layout (converted to OCI, as skopeo does).
   */
  format?: ManifestFormat;
  /** Refuse any change of digest (a conversion, a recompression), as skopeo's --preserve-digests. */
  preserveDigests?: boolean;
  /**
   * Recompress layers to this (`none` keeps or makes them uncompressed); layer digests and the
   * manifest change. Default: layers keep their bytes, except uncompressed layers sent to a sink
   * that asks for compression (a registry: gzip).
   */
  compress?: Compression;
  /** Compression level for `compress` (gzip 1–9, zstd 1–22). */
  compressLevel?: number;
  /**
   * What earlier runs learnt about blobs: where they were seen (for cross-repository mounts) and
   * compressed↔uncompressed pairs (to skip compressing a layer the destination registry has).
   */
  blobInfo?: BlobInfoCache;
  signal?: AbortSignal;
  onEvent?: (e: CopyEvent) => void;
}

export interface CopyResult {
  /** Digest of the manifest written as the destination's top level. */
  digest: Digest;
  mediaType: string;
  /** Digests of the image manifests copied. */
  images: Digest[];
  blobsCopied: number;
  blobsSkipped: number;
  bytesCopied: number;
}

function asImage(m: RawManifest, where: string): ImageManifest {
  const parsed = parseManifest(m.bytes, m.mediaType, where);
  if (parsed.kind !== 'image') {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `${where}: expected an image manifest, got ${parsed.mediaType}`,
    );
  }
  return parsed;
}

/**
 * Copies an image (or an index) from `src` to `dst`: blobs first (skipping what the destination
 * has, mounting where it can), then manifests, then commit. On any failure the sink is aborted, so
 * nothing is left where the result belongs. Digests never change unless platforms are filtered
 * out of an index (the new index is then written).
 */
export async function copyImage(
  src: ImageSource,
  dst: ImageSink,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const opts = optionsFor(options, dst);
  const result: CopyResult = {
    digest: '' as Digest,
    mediaType: '',
    images: [],
    blobsCopied: 0,
    blobsSkipped: 0,
    bytesCopied: 0,
  };
  checkCompressLevel(opts.compress, opts.compressLevel);
  const staging = new Staging();
  try {
    const top = await src.topManifest(opts.signal);
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    const wanted = opts.platforms?.length ? opts.platforms : [hostPlatform()];
    if (parsed.kind === 'index' && (opts.all || (wanted.length > 1 && dst.acceptsIndex))) {
      await copyIndex(src, dst, top, parsed, wanted, opts, result, staging);
    } else {
      // One image: the selector holds the platform policy (and refuses schema1).
      const sel = await selectImage(src, {
        platform: wanted[0],
        explicit: opts.platforms?.length === 1 && !opts.all,
        signal: opts.signal,
      });
      await copyOne(src, dst, sel.instance, true, opts, result, staging);
    }
    await dst.commit(opts.signal);
    return result;
  } catch (err) {
    await dst.abort().catch(() => {});
    throw err;
  } finally {
    await staging.close().catch(() => {});
  }
}

/** Copies the chosen instances of an index (or all of them) and writes the index they make. */
async function copyIndex(
  src: ImageSource,
  dst: ImageSink,
  top: RawManifest,
  parsed: IndexManifest,
  wanted: Platform[],
  opts: CopyOptions,
  result: CopyResult,
  staging: Staging,
): Promise<void> {
  if (!dst.acceptsIndex) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `${dst.name} holds one image; --all needs a destination that stores an index`,
    );
  }
  const chosen = opts.all ? parsed.manifests : wanted.map((p) => selectFromIndex(parsed, p, src.name));
  const written: Descriptor[] = [];
  for (const d of dedupe(chosen)) {
    const inst = await src.manifest(d.digest, opts.signal);
    const kind = parseManifest(inst.bytes, inst.mediaType, `${src.name}@${d.digest}`).kind;
    const out = kind === 'image' ? await copyOne(src, dst, inst, false, opts, result, staging) : inst;
    if (kind !== 'image') await dst.putManifest(inst, false, opts.signal);
    written.push({ ...d, digest: out.digest, size: out.bytes.length, mediaType: out.mediaType });
  }
  const converting = opts.format !== undefined && !isFormat(top.mediaType, opts.format);
  if (converting) refuseIfPreserving(opts, top.mediaType, opts.format!, src.name);
  const changed = written.some((w, i) => w.digest !== dedupe(chosen)[i]!.digest);
  const index = converting
    ? convertIndex(written, opts.format!, parsed.annotations)
    : changed
      ? rewrittenIndex(top, parsed, dedupe(chosen), written)
      : opts.all
        ? top
        : filteredIndex(top, parsed, dedupe(chosen));
  await dst.putManifest(index, true, opts.signal);
  opts.onEvent?.({ type: 'manifest', digest: index.digest, mediaType: index.mediaType });
  result.digest = index.digest;
  result.mediaType = index.mediaType;
}

function dedupe(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    if (seen.has(d.digest)) return false;
    seen.add(d.digest);
    return true;
  });
}

function filteredIndex(top: RawManifest, index: IndexManifest, keep: Descriptor[]): RawManifest {
  const json = JSON.parse(top.bytes.toString('utf8')) as Record<string, unknown>;
  const keepSet = new Set<string>(keep.map((d) => d.digest));
  json.manifests = (json.manifests as { digest: string }[]).filter((m) => keepSet.has(m.digest));
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, digest: sha256(bytes), mediaType: index.mediaType };
}

/** The index `top` keeping only `keep`, each replaced by its counterpart in `written`. */
function rewrittenIndex(
  top: RawManifest,
  index: IndexManifest,
  keep: Descriptor[],
  written: Descriptor[],
): RawManifest {
  const json = JSON.parse(top.bytes.toString('utf8')) as Record<string, unknown>;
  const byDigest = new Map<string, Descriptor>(keep.map((d, i) => [d.digest, written[i]!]));
  json.manifests = (json.manifests as Record<string, unknown>[]).flatMap((m) => {
    const w = byDigest.get(m.digest as string);
    return w ? [{ ...m, mediaType: w.mediaType, digest: w.digest, size: w.size }] : [];
  });
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, digest: sha256(bytes), mediaType: index.mediaType };
}

/** Which layers get new compression (index → target), checked before anything is transferred. */
function recompressPlan(
  image: ImageManifest,
  manifestMediaType: string,
  dst: BlobSink,
  opts: CopyOptions,
  where: string,
  actual: Map<number, Compression>,
): Map<number, { to: Compression; mediaType: string }> {
  const plan = new Map<number, { to: Compression; mediaType: string }>();
  image.layers.forEach((l, i) => {
    const label = layerCompression(l.mediaType);
    if (label === undefined) return; // foreign or unknown layer types keep their bytes
    const to = layerTarget(label, actual.get(i), opts.compress, dst.desiredLayerCompression);
    if (to === undefined) return;
    plan.set(i, { to, mediaType: layerMediaType(manifestMediaType, to, where) });
  });
  return plan;
}

/** `m` with layer `i` described by `layers.get(i)`. */
function withLayers(m: RawManifest, layers: Map<number, Descriptor>): RawManifest {
  const json = JSON.parse(m.bytes.toString('utf8')) as { layers: Record<string, unknown>[] };
  json.layers = json.layers.map((l, i) => {
    const d = layers.get(i);
    if (!d) return l;
    const { urls: _urls, ...rest } = l;
    return { ...rest, mediaType: d.mediaType, digest: d.digest, size: d.size };
  });
  const bytes = Buffer.from(JSON.stringify(json));
  return { bytes, digest: sha256(bytes), mediaType: m.mediaType };
}

/** Copies one image manifest's blobs and the manifest itself (used by {@link copyImage} and index creation). */
export async function copyOne(
  src: ImageSource,
  dst: ImageSink,
  source: RawManifest,
  top: boolean,
  opts: CopyOptions,
  result: CopyResult,
  staging: Staging,
): Promise<RawManifest> {
  const image = asImage(source, `${src.name}@${source.digest}`);
  const m =
    dst.kind === 'whole-image'
      ? await copyWhole(src, dst, source, image, opts)
      : await copyBlobs(src, dst, source, image, top, opts, result, staging);
  opts.onEvent?.({ type: 'manifest', digest: m.digest, mediaType: m.mediaType });
  result.images.push(m.digest);
  if (top) {
    result.digest = m.digest;
    result.mediaType = m.mediaType;
  }
  return m;
}

/** Hands the image to a sink that writes it at once (docker-archive, engine). */
async function copyWhole(
  src: ImageSource,
  dst: WholeImageSink,
  m: RawManifest,
  image: ImageManifest,
  opts: CopyOptions,
): Promise<RawManifest> {
  if (opts.compress !== undefined) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `${dst.name} stores layers as they come; --dest-compress-format needs an oci:, dir: or registry destination`,
    );
  }
  const configBytes = await readAtMostFrom(
    await src.blob(image.config, { signal: opts.signal }),
    `config of ${src.name}`,
  );
  parseConfig(configBytes, `config ${image.config.digest}`);
  const whole: WholeImage = {
    manifest: m,
    configDescriptor: image.config,
    configBytes,
    layers: image.layers,
    blob: (d, o) => src.blob(d, o),
  };
  if (src.readBlob) whole.readBlob = (d, onData, signal) => src.readBlob!(d, onData, signal);
  if (src.layerSizeHint) whole.sizeHint = (d, signal) => src.layerSizeHint!(d, signal);
  await dst.writeImage(whole, opts.signal);
  return m;
}

/** Blobs one by one (skipping what the destination has, reusing what it can), then the manifest. */
async function copyBlobs(
  original: ImageSource,
  dst: BlobSink,
  source: RawManifest,
  parsed: ImageManifest,
  top: boolean,
  opts: CopyOptions,
  result: CopyResult,
  staging: Staging,
): Promise<RawManifest> {
  let src = original;
  let image = parsed;
  let m: RawManifest = source;
  // Converting changes the manifest (and, to OCI, the config): the layers are the same bytes.
  if (opts.format && !isFormat(source.mediaType, opts.format))
    ({ manifest: m, image, source: src } = await convertImage(src, source, image, opts.format, opts));
  const plan = recompressPlan(
    image,
    m.mediaType,
    dst,
    opts,
    dst.name,
    await layerBytesCompression(src, image, opts.signal),
  );
  if (plan.size) refuseRecompressIfPreserving(opts, `${src.name}@${source.digest}`, dst.name);
  const kept = image.layers.filter((_l, i) => !plan.has(i));
  // Largest first, so the long transfers start early.
  const order = dedupe([image.config, ...kept]).sort((a, b) => b.size - a.size);
  const staged = new Map<string, Promise<Descriptor>>();
  const newLayers = new Map<number, Descriptor>();
  const reuse = new BlobReuse(dst, src, opts.blobInfo, opts);
  const progress = (d: Descriptor) => (bytes: number) =>
    opts.onEvent?.({ type: 'blob-progress', digest: d.digest, bytes });
  const skipped = (d: Descriptor, reason: ReuseOutcome): void => {
    result.blobsSkipped++;
    opts.onEvent?.({ type: 'blob-skip', digest: d.digest, size: d.size, reason });
  };
  // Before compressing anything, look for the same uncompressed layer at the destination:
  // a verified match needs no compression and no upload.
  let diffIds: Digest[] = [];
  if (plan.size && reuse.looksByDiffId) {
    const configBytes = await readAtMostFrom(
      await src.blob(image.config, { signal: opts.signal }),
      `config of ${src.name}`,
    );
    diffIds = parseConfig(configBytes, `config ${image.config.digest}`).rootfs?.diff_ids ?? [];
    if (diffIds.length !== image.layers.length) diffIds = [];
  }
  const compressOne = async (l: Descriptor, to: Compression, mediaType: string): Promise<Descriptor> => {
    opts.onEvent?.({ type: 'blob-start', digest: l.digest, size: l.size, mediaType: l.mediaType });
    const openSource = () => src.blob(l, { signal: opts.signal, onProgress: progress(l) });
    let descriptor: Descriptor;
    if (dst.putBlobStream) {
      // Compressed straight into the upload; the digest is computed on the way and given last.
      let tap = sha256Tap();
      const r = await dst.putBlobStream(async () => {
        tap = sha256Tap();
        return recompressStream(await openSource(), to, opts.compressLevel, tap);
      }, opts.signal);
      descriptor = { mediaType, digest: r.digest, size: r.size };
      if (l.annotations) descriptor.annotations = l.annotations;
      result.blobsCopied++;
      result.bytesCopied += r.size;
      await reuse.recordPair(
        r.digest,
        r.size,
        tap.digest(),
        to,
        to === 'none' ? undefined : effectiveLevel(to, opts.compressLevel),
      );
    } else {
      const s = await staging.recompress(
        await openSource(),
        l,
        to,
        mediaType,
        opts.compressLevel,
        opts.signal,
      );
      descriptor = s.descriptor;
      const outcome = await reuse.byDigest(s.descriptor, false);
      if (outcome) skipped(s.descriptor, outcome);
      else {
        await dst.putBlob(s.descriptor, s.open, opts.signal);
        result.blobsCopied++;
        result.bytesCopied += s.descriptor.size;
      }
      await reuse.recordPair(
        s.descriptor.digest,
        s.descriptor.size,
        s.diffId,
        to,
        to === 'none' ? undefined : effectiveLevel(to, opts.compressLevel),
      );
    }
    await reuse.remember(descriptor.digest);
    opts.onEvent?.({ type: 'blob-done', digest: l.digest, size: l.size });
    return descriptor;
  };
  const recompressOne = async (i: number): Promise<void> => {
    const l = image.layers[i]!;
    const { to, mediaType } = plan.get(i)!;
    const diffId = diffIds[i];
    const found = diffId ? await reuse.byDiffId(diffId, to, mediaType) : undefined;
    if (found) {
      skipped(found.descriptor, found.outcome);
      newLayers.set(i, { ...l, ...found.descriptor });
      return;
    }
    const key = `${l.digest} ${to} ${mediaType}`;
    let p = staged.get(key);
    if (!p) {
      p = compressOne(l, to, mediaType);
      staged.set(key, p);
    }
    newLayers.set(i, await p);
  };
  const copyBlob = async (d: Descriptor): Promise<void> => {
    const outcome = await reuse.byDigest(d);
    if (outcome) {
      skipped(d, outcome);
      return;
    }
    opts.onEvent?.({ type: 'blob-start', digest: d.digest, size: d.size, mediaType: d.mediaType });
    const onProgress = progress(d);
    const readBlob = src.readBlob?.bind(src);
    const put = () =>
      // Files from a registry: socket -> file on one thread, no stream (the reader verifies).
      readBlob && dst.putBlobFrom
        ? dst.putBlobFrom(
            d,
            { verified: true, read: (onData) => readBlob(d, onData, opts.signal, onProgress) },
            opts.signal,
          )
        : dst.putBlob(d, () => src.blob(d, { signal: opts.signal, onProgress }), opts.signal);
    // A cache entry found corrupt on the way is removed by then: once more fetches it afresh.
    await put().catch((err: unknown) => {
      if (!isCorruptCacheEntry(err)) throw err;
      return put();
    });
    result.blobsCopied++;
    result.bytesCopied += d.size;
    await reuse.remember(d.digest);
    opts.onEvent?.({ type: 'blob-done', digest: d.digest, size: d.size });
  };
  const work: (() => Promise<void>)[] = [
    ...[...plan.keys()].map((i) => () => recompressOne(i)),
    ...order.map((d) => () => copyBlob(d)),
  ];
  await mapLimit(work, opts.jobs ?? 6, (w) => w());
  if (newLayers.size) m = withLayers(m, newLayers);
  await dst.putManifest(m, top, opts.signal);
  return m;
}
