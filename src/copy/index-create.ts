import { sha256 } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import {
  type Descriptor,
  type ImageSink,
  type ImageSource,
  MediaType,
  type Platform,
  parseConfig,
  parseManifest,
  type RawManifest,
} from '../image/index.ts';
import type { CopyOptions, CopyResult } from './copy-options.ts';
import { ImageCopier } from './image-copier.ts';
import { readAtMostFrom } from './util.ts';

/**
 * Assembles an index from per-platform images: each source's image (and its blobs) is copied to
 * `dst`, its platform read from its config (os, architecture, variant), and an index naming them
 * all becomes the destination's top level. The index is a Docker manifest list when every image is
 * a Docker schema 2 manifest, else an OCI image index.
 */
export async function createIndex(
  sources: ImageSource[],
  dst: ImageSink,
  opts: Omit<CopyOptions, 'platforms' | 'all'> = {},
): Promise<CopyResult> {
  if (sources.length === 0)
    throw new LadingError(ErrorCode.BadArgument, 'index create needs at least one image');
  if (!dst.acceptsIndex) {
    throw new LadingError(ErrorCode.BadArgument, `${dst.name} holds one image, not an index`);
  }
  const copier = new ImageCopier(sources[0]!, dst, opts);
  return copier.run(async () => {
    const planned = await planEntries(sources, opts.signal);
    const entries: Descriptor[] = [];
    for (const { src, top, platform } of planned) {
      const written = await copier.copyInstance(top, src);
      entries.push({
        mediaType: written.mediaType,
        digest: written.digest,
        size: written.bytes.length,
        platform,
      });
    }
    const docker = entries.every((e) => e.mediaType === MediaType.DockerManifest);
    const mediaType = docker ? MediaType.DockerManifestList : MediaType.OciIndex;
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: entries }));
    await copier.putIndex(dst, { bytes, digest: sha256(bytes), mediaType });
  });
}

/** Each source's image and platform. */
interface Entry {
  src: ImageSource;
  top: RawManifest;
  platform: Platform;
}

async function planEntries(sources: ImageSource[], signal: AbortSignal | undefined): Promise<Entry[]> {
  // Every image is read and checked (one image each, a platform each, no platform twice)
  // before anything is written: a refused index leaves the destination as it was.
  const planned: Entry[] = [];
  const seen = new Map<string, string>();
  for (const src of sources) {
    const { top, platform } = await platformOf(src, signal);
    const key = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
    const dup = seen.get(key);
    if (dup) {
      throw new LadingError(
        ErrorCode.BadArgument,
        `${src.name} and ${dup} are both ${key}: an index holds one image per platform (nothing was written)`,
      );
    }
    seen.set(key, src.name);
    planned.push({ src, top, platform });
  }
  return planned;
}

/** A source's one image and its platform (from its config); an index or schema1 is refused. */
async function platformOf(
  src: ImageSource,
  signal: AbortSignal | undefined,
): Promise<{ top: RawManifest; platform: Platform }> {
  const top = await src.topManifest(signal);
  const parsed = parseManifest(top.bytes, top.mediaType, src.name);
  if (parsed.kind !== 'image') {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `${src.name} is ${parsed.kind === 'index' ? 'an index' : 'a schema1 manifest'}; index create takes single-platform images (select one with its digest)`,
    );
  }
  const config = parseConfig(
    await readAtMostFrom(await src.blob(parsed.config, { signal }), `config of ${src.name}`),
    `config ${parsed.config.digest} of ${src.name}`,
  );
  if (!config.os || !config.architecture) {
    throw new LadingError(
      ErrorCode.ManifestInvalid,
      `${src.name}: its config names no os/architecture, so it has no platform in an index`,
    );
  }
  const platform: Platform = { architecture: config.architecture, os: config.os };
  if (config.variant) platform.variant = config.variant;
  return { top, platform };
}
