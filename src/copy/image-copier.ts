import type { Readable } from 'node:stream';
import { isCorruptCacheEntry } from '../cache/index.ts';
import type { Digest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type BlobSink,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type ImageSink,
  type ImageSource,
  isFormat,
  parseConfig,
  parseManifest,
  type RawManifest,
  type ReuseOutcome,
  type WholeImage,
  type WholeImageSink,
} from '../image/index.ts';
import type { Compression } from '../layers/index.ts';
import { BlobReuse } from './blob-reuse.ts';
import { checkCompressLevel } from './compress-level.ts';
import { convertImage, refuseRecompressIfPreserving } from './convert-image.ts';
import type { CopyEvent, CopyOptions, CopyResult } from './copy-options.ts';
import { effectiveLevel, layerBytesCompression } from './layer-bytes.ts';
import { recompressStream, Staging } from './recompress.ts';
import { type LayerTarget, recompressPlan, withLayers } from './recompress-plan.ts';
import { sha256Tap } from './sha256-tap.ts';
import { dedupe, mapLimit, readAtMostFrom } from './util.ts';

/** One image's blobs on their way to a blob-by-blob sink. */
interface ImageBlobs {
  dst: BlobSink;
  /** Where the blobs are read from (serving the converted config when the manifest is converted). */
  src: ImageSource;
  image: ImageManifest;
  /** The manifest to write, before recompressed layers are put in it. */
  manifest: RawManifest;
  /** The layers that get new compression, by index. */
  plan: Map<number, LayerTarget>;
  reuse: BlobReuse;
  /** The layers' diff_ids from the config when a layer may be found at the destination by them; else none. */
  diffIds: Digest[];
  /** Recompressions under way, by layer digest and target: each distinct layer is compressed once. */
  staged: Map<string, Promise<Descriptor>>;
  /** The new descriptors of the recompressed (or reused by diff_id) layers, by index. */
  newLayers: Map<number, Descriptor>;
}

/**
 * One copy from `src` to `dst`: what it was asked (the options), what it did (the result), and
 * where recompressed blobs wait for their upload (the staging directory). The blob-info cache in
 * the options tells it where blobs were seen and which compressed blobs hold which layers.
 *
 * {@link run} runs the copy's steps then commits the sink (or aborts it on failure); the steps
 * are {@link copyTop} (one image as the top level), {@link copyInstance} (an image of an index)
 * and {@link putIndex}.
 */
export class ImageCopier {
  readonly src: ImageSource;
  readonly dst: ImageSink;
  readonly opts: CopyOptions;
  readonly #result: CopyResult = {
    digest: '' as Digest,
    mediaType: '',
    images: [],
    blobsCopied: 0,
    blobsSkipped: 0,
    bytesCopied: 0,
  };
  readonly #staging = new Staging();

  /** Refuses a compression level its format does not have, before anything is read or written. */
  constructor(src: ImageSource, dst: ImageSink, opts: CopyOptions) {
    checkCompressLevel(opts.compress, opts.compressLevel);
    this.src = src;
    this.dst = dst;
    this.opts = opts;
  }

  /**
   * Runs `steps`, then commits the destination. On any failure the sink is aborted, so nothing is
   * left where the result belongs; staged blobs are removed either way.
   */
  async run(steps: () => Promise<void>): Promise<CopyResult> {
    try {
      await steps();
      await this.dst.commit(this.opts.signal);
      return this.#result;
    } catch (err) {
      await this.dst.abort().catch(() => {});
      throw err;
    } finally {
      await this.#staging.close().catch(() => {});
    }
  }

  /** Copies the image `m` (its blobs, then its manifest) as the destination's top level. */
  async copyTop(m: RawManifest): Promise<RawManifest> {
    const written = await this.#copyImage(this.src, m, true);
    this.#setTop(written);
    return written;
  }

  /**
   * Copies the image `m` (its blobs, then its manifest) as one image of an index; `from` is where
   * it is read (default: the copy's source; an index assembled from several images has several).
   */
  copyInstance(m: RawManifest, from: ImageSource = this.src): Promise<RawManifest> {
    return this.#copyImage(from, m, false);
  }

  /**
   * Writes `index` as the top level of `dst` (the copy's destination, which the caller has found
   * stores an index), once its images are copied.
   */
  async putIndex(dst: BlobSink, index: RawManifest): Promise<void> {
    await dst.putManifest(index, true, this.opts.signal);
    this.#event({ type: 'manifest', digest: index.digest, mediaType: index.mediaType });
    this.#setTop(index);
  }

  async #copyImage(src: ImageSource, source: RawManifest, top: boolean): Promise<RawManifest> {
    const image = asImage(source, `${src.name}@${source.digest}`);
    const m =
      this.dst.kind === 'whole-image'
        ? await this.#copyWhole(src, this.dst, source, image)
        : await this.#copyBlobs(src, this.dst, source, image, top);
    this.#event({ type: 'manifest', digest: m.digest, mediaType: m.mediaType });
    this.#result.images.push(m.digest);
    return m;
  }

  /** Hands the image to a sink that writes it at once (docker-archive, engine). */
  async #copyWhole(
    src: ImageSource,
    dst: WholeImageSink,
    m: RawManifest,
    image: ImageManifest,
  ): Promise<RawManifest> {
    if (this.opts.compress !== undefined) {
      throw new LadingError(
        ErrorCode.BadArgument,
        `${dst.name} stores layers as they come; --dest-compress-format needs an oci:, dir: or registry destination`,
      );
    }
    const { bytes: configBytes } = await readConfig(src, image, this.opts.signal);
    const whole: WholeImage = {
      manifest: m,
      configDescriptor: image.config,
      configBytes,
      layers: image.layers,
      blob: (d, o) => src.blob(d, o),
    };
    if (src.readBlob) whole.readBlob = (d, onData, signal) => src.readBlob!(d, onData, signal);
    if (src.layerSizeHint) whole.sizeHint = (d, signal) => src.layerSizeHint!(d, signal);
    await dst.writeImage(whole, this.opts.signal);
    return m;
  }

  /** Blobs one by one (skipping what the destination has, reusing what it can), then the manifest. */
  async #copyBlobs(
    src: ImageSource,
    dst: BlobSink,
    source: RawManifest,
    parsed: ImageManifest,
    top: boolean,
  ): Promise<RawManifest> {
    const w = await this.#planBlobs(src, dst, source, parsed);
    const kept = w.image.layers.filter((_l, i) => !w.plan.has(i));
    // Largest first, so the long transfers start early.
    const order = dedupe([w.image.config, ...kept]).sort((a, b) => b.size - a.size);
    const work: (() => Promise<void>)[] = [
      ...[...w.plan.keys()].map((i) => () => this.#recompressLayer(w, i)),
      ...order.map((d) => () => this.#copyBlob(w, d)),
    ];
    await mapLimit(work, this.opts.jobs ?? 6, (step) => step());
    const m = w.newLayers.size ? withLayers(w.manifest, w.newLayers) : w.manifest;
    await dst.putManifest(m, top, this.opts.signal);
    return m;
  }

  /**
   * The image as it will be written (converted to the asked format: the manifest and, to OCI, the
   * config change, the layers are the same bytes) and which of its layers get new compression.
   * Nothing is transferred yet.
   */
  async #planBlobs(
    original: ImageSource,
    dst: BlobSink,
    source: RawManifest,
    parsed: ImageManifest,
  ): Promise<ImageBlobs> {
    const opts = this.opts;
    let src = original;
    let image = parsed;
    let manifest = source;
    if (opts.format && !isFormat(source.mediaType, opts.format))
      ({ manifest, image, source: src } = await convertImage(src, source, image, opts.format, opts));
    const actual = await layerBytesCompression(src, image, opts.signal);
    const plan = recompressPlan(image, manifest.mediaType, dst, opts.compress, actual);
    if (plan.size) refuseRecompressIfPreserving(opts, `${src.name}@${source.digest}`, dst.name);
    const reuse = new BlobReuse(dst, src, opts.blobInfo, opts);
    // Before compressing anything, look for the same uncompressed layer at the destination:
    // a verified match needs no compression and no upload.
    const diffIds = plan.size && reuse.looksByDiffId ? await configDiffIds(src, image, opts.signal) : [];
    return { dst, src, image, manifest, plan, reuse, diffIds, staged: new Map(), newLayers: new Map() };
  }

  /** Layer `i` in its new compression: found at the destination by its diff_id, or compressed. */
  async #recompressLayer(w: ImageBlobs, i: number): Promise<void> {
    const l = w.image.layers[i]!;
    const target = w.plan.get(i)!;
    const diffId = w.diffIds[i];
    const found = diffId ? await w.reuse.byDiffId(diffId, target.to, target.mediaType) : undefined;
    if (found) {
      this.#skipped(found.descriptor, found.outcome);
      w.newLayers.set(i, { ...l, ...found.descriptor });
      return;
    }
    const key = `${l.digest} ${target.to} ${target.mediaType}`;
    let p = w.staged.get(key);
    if (!p) {
      p = this.#compressLayer(w, l, target);
      w.staged.set(key, p);
    }
    w.newLayers.set(i, await p);
  }

  /** Compresses layer `l` as `target` and sends it; returns its new descriptor. */
  async #compressLayer(w: ImageBlobs, l: Descriptor, target: LayerTarget): Promise<Descriptor> {
    this.#event({ type: 'blob-start', digest: l.digest, size: l.size, mediaType: l.mediaType });
    const open = () => w.src.blob(l, { signal: this.opts.signal, onProgress: this.#progress(l) });
    const descriptor = w.dst.putBlobStream
      ? await this.#compressIntoUpload(w, l, open, target)
      : await this.#compressStaged(w, l, open, target);
    await w.reuse.remember(descriptor.digest);
    this.#event({ type: 'blob-done', digest: l.digest, size: l.size });
    return descriptor;
  }

  /** Compressed straight into the upload; the digest is computed on the way and given last. */
  async #compressIntoUpload(
    w: ImageBlobs,
    l: Descriptor,
    open: () => Promise<Readable>,
    { to, mediaType }: LayerTarget,
  ): Promise<Descriptor> {
    let tap = sha256Tap();
    const r = await w.dst.putBlobStream!(async () => {
      tap = sha256Tap();
      return recompressStream(await open(), to, this.opts.compressLevel, tap);
    }, this.opts.signal);
    const descriptor: Descriptor = { mediaType, digest: r.digest, size: r.size };
    if (l.annotations) descriptor.annotations = l.annotations;
    this.#sent(r.size);
    await this.#recordPair(w, descriptor, tap.digest(), to);
    return descriptor;
  }

  /** Compressed into the staging directory first (its digest known), then sent unless the destination has it. */
  async #compressStaged(
    w: ImageBlobs,
    l: Descriptor,
    open: () => Promise<Readable>,
    { to, mediaType }: LayerTarget,
  ): Promise<Descriptor> {
    const signal = this.opts.signal;
    const s = await this.#staging.recompress(await open(), l, to, mediaType, this.opts.compressLevel, signal);
    const outcome = await w.reuse.byDigest(s.descriptor, false);
    if (outcome) this.#skipped(s.descriptor, outcome);
    else {
      await w.dst.putBlob(s.descriptor, s.open, signal);
      this.#sent(s.descriptor.size);
    }
    await this.#recordPair(w, s.descriptor, s.diffId, to);
    return s.descriptor;
  }

  /** Remembers that compressed blob `d` holds the layer `diffId` (for later copies to skip compressing). */
  #recordPair(w: ImageBlobs, d: Descriptor, diffId: Digest, to: Compression): Promise<void> {
    const level = to === 'none' ? undefined : effectiveLevel(to, this.opts.compressLevel);
    return w.reuse.recordPair(d.digest, d.size, diffId, to, level);
  }

  /** Blob `d` as it is: reused at the destination, or sent. */
  async #copyBlob(w: ImageBlobs, d: Descriptor): Promise<void> {
    const outcome = await w.reuse.byDigest(d);
    if (outcome) {
      this.#skipped(d, outcome);
      return;
    }
    this.#event({ type: 'blob-start', digest: d.digest, size: d.size, mediaType: d.mediaType });
    // A cache entry found corrupt on the way is removed by then: once more fetches it afresh.
    await this.#sendBlob(w, d).catch((err: unknown) => {
      if (!isCorruptCacheEntry(err)) throw err;
      return this.#sendBlob(w, d);
    });
    this.#sent(d.size);
    await w.reuse.remember(d.digest);
    this.#event({ type: 'blob-done', digest: d.digest, size: d.size });
  }

  #sendBlob(w: ImageBlobs, d: Descriptor): Promise<void> {
    const { src, dst } = w;
    const signal = this.opts.signal;
    const onProgress = this.#progress(d);
    const readBlob = src.readBlob?.bind(src);
    // Files from a registry: socket -> file on one thread, no stream (the reader verifies).
    return readBlob && dst.putBlobFrom
      ? dst.putBlobFrom(
          d,
          { verified: true, read: (onData) => readBlob(d, onData, signal, onProgress) },
          signal,
        )
      : dst.putBlob(d, () => src.blob(d, { signal, onProgress }), signal);
  }

  #setTop(m: RawManifest): void {
    this.#result.digest = m.digest;
    this.#result.mediaType = m.mediaType;
  }

  #sent(size: number): void {
    this.#result.blobsCopied++;
    this.#result.bytesCopied += size;
  }

  #skipped(d: Descriptor, reason: ReuseOutcome): void {
    this.#result.blobsSkipped++;
    this.#event({ type: 'blob-skip', digest: d.digest, size: d.size, reason });
  }

  #progress(d: Descriptor): (bytes: number) => void {
    return (bytes) => this.#event({ type: 'blob-progress', digest: d.digest, bytes });
  }

  #event(e: CopyEvent): void {
    this.opts.onEvent?.(e);
  }
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

/** An image's config, read and checked. */
async function readConfig(
  src: ImageSource,
  image: ImageManifest,
  signal: AbortSignal | undefined,
): Promise<{ bytes: Buffer; config: ImageConfig }> {
  const bytes = await readAtMostFrom(await src.blob(image.config, { signal }), `config of ${src.name}`);
  return { bytes, config: parseConfig(bytes, `config ${image.config.digest}`) };
}

/** The layers' diff_ids, or none when the config does not name one per layer. */
async function configDiffIds(
  src: ImageSource,
  image: ImageManifest,
  signal: AbortSignal | undefined,
): Promise<Digest[]> {
  const diffIds = (await readConfig(src, image, signal)).config.rootfs?.diff_ids ?? [];
  return diffIds.length === image.layers.length ? diffIds : [];
}
