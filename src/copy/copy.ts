import { type BlobInfoCache, isCorruptCacheEntry } from '../cache/index.ts';
import { type Digest, sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  convertIndex,
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type ImageManifest,
  type IndexManifest,
  isFormat,
  type ManifestFormat,
  type Platform,
  parseConfig,
  parseManifest,
  selectPlatform,
} from '../image/index.ts';
import type { Compression } from '../layers/index.ts';
import type { ExistingLayer, ImageSink, ImageSource, RawManifest, WholeImage } from '../transports/index.ts';
import {
  convertImage,
  optionsFor,
  refuseIfPreserving,
  refuseRecompressIfPreserving,
} from './convert-image.ts';
import { effectiveLevel, layerBytesCompression, layerTarget, sameForm } from './layer-bytes.ts';
import { layerCompression, layerMediaType, recompressStream, Staging } from './recompress.ts';
import { mapLimit, readAtMostFrom } from './util.ts';

/** What the orchestrator reports while it works (rendered by the CLI's progress display). */
export type CopyEvent =
  | { type: 'blob-start'; digest: Digest; size: number; mediaType: string }
  | { type: 'blob-progress'; digest: Digest; bytes: number }
  | { type: 'blob-done'; digest: Digest; size: number }
  | { type: 'blob-skip'; digest: Digest; size: number; reason: 'exists' | 'mounted' }
  | { type: 'manifest'; digest: Digest; mediaType: string };

export interface CopyOptions {
  /** Platforms to copy from an index (default: the host's). Several keep an index of just those. */
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
  const staging = new Staging();
  try {
    const top = await src.topManifest(opts.signal);
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    if (parsed.kind === 'schema1') {
      throw new LadingError(
        ErrorCode.ManifestUnsupported,
        `${src.name} is a Docker schema1 manifest, which lading does not copy`,
      );
    }
    if (parsed.kind === 'index') {
      const wanted = opts.platforms?.length ? opts.platforms : [hostPlatform()];
      if (opts.all || (wanted.length > 1 && dst.acceptsIndex)) {
        if (!dst.acceptsIndex) {
          throw new LadingError(
            ErrorCode.BadArgument,
            `${dst.name} holds one image; --all needs a destination that stores an index`,
          );
        }
        const chosen = opts.all ? parsed.manifests : wanted.map((p) => pick(parsed, p, src.name));
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
      } else {
        const d = pick(parsed, wanted[0]!, src.name);
        const inst = await src.manifest(d.digest, opts.signal);
        await copyOne(src, dst, inst, true, opts, result, staging);
      }
    } else {
      await copyOne(src, dst, top, true, opts, result, staging);
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

function pick(index: IndexManifest, p: Platform, where: string): Descriptor {
  const i = selectPlatform(
    p,
    index.manifests.map((d) => d.platform),
  );
  const d = i === -1 ? undefined : index.manifests[i];
  if (!d) {
    const have = index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : m.digest));
    throw new LadingError(
      ErrorCode.NoMatchingPlatform,
      `no image for platform ${formatPlatform(p)} in ${where}; it has: ${have.join(', ')}`,
      {
        expected: formatPlatform(p),
      },
    );
  }
  return d;
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
  dst: ImageSink,
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

/** The destination's existing layers, read once per sink (best effort: none when unreadable). */
const existingBySink = new WeakMap<ImageSink, Promise<ExistingLayer[]>>();
function existingLayers(dst: ImageSink, signal?: AbortSignal): Promise<ExistingLayer[]> {
  let p = existingBySink.get(dst);
  if (!p) {
    p = dst.existingLayers ? dst.existingLayers(signal).catch(() => []) : Promise.resolve([]);
    existingBySink.set(dst, p);
  }
  return p;
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
  let image = asImage(source, `${src.name}@${source.digest}`);
  let m: RawManifest = source;
  // Converting changes the manifest (and, to OCI, the config): the layers are the same bytes.
  if (opts.format && !isFormat(source.mediaType, opts.format) && !dst.writeImage)
    ({ manifest: m, image, source: src } = await convertImage(src, source, image, opts.format, opts));
  if (dst.writeImage && opts.compress !== undefined) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `${dst.name} stores layers as they come; --dest-compress-format needs an oci:, dir: or registry destination`,
    );
  }
  const plan = dst.writeImage
    ? new Map()
    : recompressPlan(
        image,
        m.mediaType,
        dst,
        opts,
        dst.name,
        await layerBytesCompression(src, image, opts.signal),
      );
  if (plan.size) refuseRecompressIfPreserving(opts, `${src.name}@${source.digest}`, dst.name);
  if (dst.writeImage) {
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
  } else {
    const kept = image.layers.filter((_l, i) => !plan.has(i));
    const blobs = dedupe([image.config, ...kept]);
    // Largest first, so the long transfers start early.
    const order = [...blobs].sort((a, b) => b.size - a.size);
    const staged = new Map<string, Promise<Descriptor>>();
    const newLayers = new Map<number, Descriptor>();
    // Before compressing anything, look for the same uncompressed layer at the destination (its
    // tag's current image): matching diff_ids need no compression and no upload.
    const info = opts.blobInfo;
    const dstLoc = dst.location;
    const remember = async (d: Digest): Promise<void> => {
      if (!info) return;
      if (dstLoc) await info.addLocation(d, dstLoc).catch(() => {});
      if (src.location) await info.addLocation(d, src.location).catch(() => {});
    };
    // A blob seen before in another repository of the destination's registry is mounted from there.
    const mountKnown = async (d: Descriptor): Promise<boolean> => {
      if (!info || !dstLoc || !dst.mountFrom) return false;
      for (const l of await info.locations(d.digest).catch(() => [])) {
        if (l.registry !== dstLoc.registry || l.repository === dstLoc.repository) continue;
        if (await dst.mountFrom(d, l.repository, opts.signal)) return true;
      }
      return false;
    };
    const skipped = (d: Descriptor, reason: 'exists' | 'mounted'): void => {
      result.blobsSkipped++;
      opts.onEvent?.({ type: 'blob-skip', digest: d.digest, size: d.size, reason });
    };
    let diffIds: Digest[] = [];
    let existing: ExistingLayer[] = [];
    if (plan.size && (dst.existingLayers || info)) {
      existing = await existingLayers(dst, opts.signal);
      if (existing.length || info) {
        const configBytes = await readAtMostFrom(
          await src.blob(image.config, { signal: opts.signal }),
          `config of ${src.name}`,
        );
        diffIds = parseConfig(configBytes, `config ${image.config.digest}`).rootfs?.diff_ids ?? [];
        if (diffIds.length !== image.layers.length) diffIds = [];
      }
    }
    const recompressOne = async (i: number): Promise<void> => {
      const l = image.layers[i]!;
      const { to, mediaType } = plan.get(i)!;
      const diffId = diffIds[i];
      // Asked for a compression (and level), a layer at the destination is reused only when it is
      // known to be that form: the result must not depend on what is there.
      const known =
        opts.compress !== undefined && info && diffId && to !== 'none'
          ? (await info.compressedOf(diffId).catch(() => []))
              .filter((c) => sameForm(c, to, opts.compressLevel))
              .map((c) => c.digest)
          : undefined;
      const have = diffId
        ? existing.find(
            (e) =>
              e.diffId === diffId &&
              layerCompression(e.descriptor.mediaType) === to &&
              (opts.compress === undefined || known?.includes(e.descriptor.digest)),
          )
        : undefined;
      if (have) {
        result.blobsSkipped++;
        opts.onEvent?.({
          type: 'blob-skip',
          digest: have.descriptor.digest,
          size: have.descriptor.size,
          reason: 'exists',
        });
        newLayers.set(i, { ...l, mediaType, digest: have.descriptor.digest, size: have.descriptor.size });
        return;
      }
      // A compressed form of this layer made in an earlier run, already in the destination's
      // registry (this repository, or one to mount from).
      if (diffId && info && to !== 'none') {
        for (const c of await info.compressedOf(diffId).catch(() => [])) {
          if (!sameForm(c, to, opts.compressLevel)) continue;
          const cand: Descriptor = { mediaType, digest: c.digest, size: c.size };
          const reason = (await dst.hasBlob(cand, opts.signal))
            ? 'exists'
            : (await mountKnown(cand))
              ? 'mounted'
              : undefined;
          if (!reason) continue;
          skipped(cand, reason);
          await remember(cand.digest);
          newLayers.set(i, { ...l, ...cand });
          return;
        }
      }
      const key = `${l.digest} ${to} ${mediaType}`;
      let p = staged.get(key);
      if (!p) {
        p = (async () => {
          opts.onEvent?.({ type: 'blob-start', digest: l.digest, size: l.size, mediaType: l.mediaType });
          const openSource = () =>
            src.blob(l, {
              signal: opts.signal,
              onProgress: (bytes) => opts.onEvent?.({ type: 'blob-progress', digest: l.digest, bytes }),
            });
          if (dst.putBlobStream) {
            // Compressed straight into the upload; the digest is computed on the way and given last.
            const r = await dst.putBlobStream(
              async () => recompressStream(await openSource(), to, opts.compressLevel),
              opts.signal,
            );
            const descriptor: Descriptor = { mediaType, digest: r.digest, size: r.size };
            if (l.annotations) descriptor.annotations = l.annotations;
            result.blobsCopied++;
            result.bytesCopied += r.size;
            if (info && diffId && to !== 'none')
              await info
                .addPair(r.digest, r.size, diffId, to, effectiveLevel(to, opts.compressLevel))
                .catch(() => {});
            await remember(r.digest);
            opts.onEvent?.({ type: 'blob-done', digest: l.digest, size: l.size });
            return descriptor;
          }
          const s = await staging.recompress(
            await src.blob(l, {
              signal: opts.signal,
              onProgress: (bytes) => opts.onEvent?.({ type: 'blob-progress', digest: l.digest, bytes }),
            }),
            l,
            to,
            mediaType,
            opts.compressLevel,
            opts.signal,
          );
          if (await dst.hasBlob(s.descriptor, opts.signal)) skipped(s.descriptor, 'exists');
          else if (await mountKnown(s.descriptor)) skipped(s.descriptor, 'mounted');
          else {
            await dst.putBlob(s.descriptor, s.open, opts.signal);
            result.blobsCopied++;
            result.bytesCopied += s.descriptor.size;
          }
          if (info && diffId && to !== 'none')
            await info
              .addPair(
                s.descriptor.digest,
                s.descriptor.size,
                diffId,
                to,
                effectiveLevel(to, opts.compressLevel),
              )
              .catch(() => {});
          await remember(s.descriptor.digest);
          opts.onEvent?.({ type: 'blob-done', digest: l.digest, size: l.size });
          return s.descriptor;
        })();
        staged.set(key, p);
      }
      newLayers.set(i, await p);
    };
    const work: (() => Promise<void>)[] = [
      ...[...plan.keys()].map((i) => () => recompressOne(i)),
      ...order.map((d) => () => copyBlob(d)),
    ];
    const copyBlob = async (d: Descriptor): Promise<void> => {
      if (await dst.hasBlob(d, opts.signal)) {
        skipped(d, 'exists');
        await remember(d.digest);
        return;
      }
      if ((dst.reuseBlob && (await dst.reuseBlob(d, opts.signal))) || (await mountKnown(d))) {
        skipped(d, 'mounted');
        await remember(d.digest);
        return;
      }
      opts.onEvent?.({ type: 'blob-start', digest: d.digest, size: d.size, mediaType: d.mediaType });
      const onProgress = (bytes: number): void =>
        opts.onEvent?.({ type: 'blob-progress', digest: d.digest, bytes });
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
      await remember(d.digest);
      opts.onEvent?.({ type: 'blob-done', digest: d.digest, size: d.size });
    };
    await mapLimit(work, opts.jobs ?? 6, (w) => w());
    if (newLayers.size) m = withLayers(m, newLayers);
  }
  if (!dst.writeImage) await dst.putManifest(m, top, opts.signal);
  opts.onEvent?.({ type: 'manifest', digest: m.digest, mediaType: m.mediaType });
  result.images.push(m.digest);
  if (top) {
    result.digest = m.digest;
    result.mediaType = m.mediaType;
  }
  return m;
}
