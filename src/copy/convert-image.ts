import { Readable } from 'node:stream';
import type { Digest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  convertImageManifest,
  type Descriptor,
  type ImageManifest,
  type ImageSink,
  type ImageSource,
  type ManifestFormat,
  MediaType,
  parseManifest,
  type RawManifest,
} from '../image/index.ts';
import { ociConfigBytes } from './convert-config.ts';
import { readAtMostFrom } from './util.ts';

/** What {@link copyImage}'s conversion needs of its options. */
export interface ConvertOptions {
  format?: ManifestFormat;
  compress?: string;
  preserveDigests?: boolean;
  signal?: AbortSignal;
}

/**
 * The options a copy to `dst` runs with: a destination that stores only OCI manifests (an OCI
 * layout, as skopeo, podman, buildah and umoci read it) converts Docker ones, as skopeo does;
 * `preserveDigests` refuses every change of digest instead (skopeo's --preserve-digests).
 */
export function optionsFor<T extends ConvertOptions>(opts: T, dst: ImageSink): T {
  if (opts.preserveDigests && opts.compress !== undefined) {
    throw new LadingError(
      ErrorCode.BadArgument,
      '--preserve-digests keeps every blob as it is: it cannot be combined with --dest-compress-format',
    );
  }
  if (opts.format === undefined && dst.ociOnly) return { ...opts, format: 'oci' };
  return opts;
}

/** Refuses a conversion that would change a digest when digests are to be preserved. */
export function refuseIfPreserving(
  opts: ConvertOptions,
  mediaType: string,
  to: ManifestFormat,
  where: string,
): void {
  if (!opts.preserveDigests) return;
  const what =
    mediaType === MediaType.DockerManifestList ? 'a Docker manifest list' : `a ${mediaType} manifest`;
  throw new LadingError(
    ErrorCode.BadArgument,
    `${where} is ${what}; writing it as ${to === 'oci' ? 'OCI' : 'Docker schema2'} changes its digest, which --preserve-digests forbids: copy it to a registry, dir: or docker-archive: instead, or drop --preserve-digests`,
    { expected: to, found: mediaType },
  );
}

/** Refuses new layer bytes (compressed for the destination, or to match their label) under --preserve-digests. */
export function refuseRecompressIfPreserving(opts: ConvertOptions, where: string, dst: string): void {
  if (!opts.preserveDigests) return;
  throw new LadingError(
    ErrorCode.BadArgument,
    `${where}: some layers must be (re)compressed for ${dst} (their bytes do not match their media type, or the destination stores only compressed layers), which changes digests and --preserve-digests forbids`,
  );
}

/** `src` with one more blob, served from memory (a converted config). */
class WithBlob implements ImageSource {
  readonly name: string;
  readonly location?: ImageSource['location'];
  readonly layerSizeHint?: ImageSource['layerSizeHint'];
  readonly untrustedLayerTypes?: boolean;
  readonly #src: ImageSource;
  readonly #digest: Digest;
  readonly #bytes: Buffer;

  constructor(src: ImageSource, digest: Digest, bytes: Buffer) {
    this.#src = src;
    this.#digest = digest;
    this.#bytes = bytes;
    this.name = src.name;
    if (src.location) this.location = src.location;
    if (src.untrustedLayerTypes) this.untrustedLayerTypes = true;
    if (src.layerSizeHint) this.layerSizeHint = (d, s) => src.layerSizeHint!(d, s);
  }
  topManifest(signal?: AbortSignal): Promise<RawManifest> {
    return this.#src.topManifest(signal);
  }
  manifest(digest: Digest, signal?: AbortSignal): Promise<RawManifest> {
    return this.#src.manifest(digest, signal);
  }
  async blob(desc: Descriptor, opts?: { signal?: AbortSignal; onProgress?: (bytes: number) => void }) {
    if (desc.digest !== this.#digest) return this.#src.blob(desc, opts);
    opts?.onProgress?.(this.#bytes.length);
    return Readable.from([this.#bytes], { objectMode: false });
  }
  close(): Promise<void> {
    return this.#src.close();
  }
}

/** An image manifest converted to `to`, with the source to read its blobs from. */
export interface ConvertedImage {
  manifest: RawManifest;
  image: ImageManifest;
  source: ImageSource;
}

/**
 * Converts one image manifest to `to`. Docker schema2 → OCI also re-encodes the config as
 * containers/image does (see convert-config.ts), so the config and manifest digests equal skopeo's.
 */
export async function convertImage(
  src: ImageSource,
  raw: RawManifest,
  image: ImageManifest,
  to: ManifestFormat,
  opts: ConvertOptions,
): Promise<ConvertedImage> {
  const where = `${src.name}@${raw.digest}`;
  refuseIfPreserving(opts, raw.mediaType, to, where);
  let source = src;
  let parsed = image;
  if (to === 'oci' && image.config.mediaType === MediaType.DockerConfig) {
    const bytes = await readAtMostFrom(
      await src.blob(image.config, { signal: opts.signal }),
      `config of ${where}`,
    );
    const c = ociConfigBytes(bytes, `config ${image.config.digest} of ${where}`);
    const config: Descriptor = { mediaType: MediaType.OciConfig, digest: c.digest, size: c.bytes.length };
    parsed = { ...image, config };
    source = new WithBlob(src, c.digest, c.bytes);
  }
  const manifest = convertImageManifest(parsed, to);
  const again = parseManifest(manifest.bytes, manifest.mediaType, where);
  if (again.kind !== 'image')
    throw new LadingError(ErrorCode.Internal, `${where}: conversion lost the image`);
  return { manifest, image: again, source };
}
