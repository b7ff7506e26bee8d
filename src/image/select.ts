import { Limits, readAtMost } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type ImageConfig, parseConfig } from './config.ts';
import type { ImageSource, RawManifest } from './contracts.ts';
import type { Descriptor } from './descriptor.ts';
import { type ImageManifest, type IndexManifest, parseManifest } from './manifest.ts';
import { formatPlatform, hostPlatform, type Platform, selectPlatform } from './platform.ts';

export interface SelectOptions {
  /** The platform wanted from an index (default: linux on the host's architecture). */
  platform?: Platform;
  /**
   * Whether the platform was asked for explicitly. Then a single-platform image (no index) of
   * another platform is an error (E_PLATFORM_MISMATCH), checked against its config; without,
   * a single image is taken as it is and its config is not read.
   */
  explicit?: boolean;
  signal?: AbortSignal;
}

/** One platform's image, chosen from a source. */
export interface SelectedImage {
  /** The top-level manifest (the index for multi-platform images). */
  top: RawManifest;
  /** Present when the top level is an index or manifest list. */
  index?: IndexManifest;
  /** The index entry chosen, when there is an index. */
  descriptor?: Descriptor;
  /** The chosen image manifest (the top itself for a single image). */
  instance: RawManifest;
  manifest: ImageManifest;
  /** The chosen image's platform: the index entry's, or its config's when the config was read. */
  platform?: Platform;
  /** The config, when selecting read it (explicit platform, single image). */
  config?: { bytes: Buffer; parsed: ImageConfig };
}

/** The platform a config declares, or undefined when it names no architecture. */
export function configPlatform(config: ImageConfig): Platform | undefined {
  if (!config.architecture) return undefined;
  const p: Platform = { os: config.os ?? 'linux', architecture: config.architecture };
  if (config.variant) p.variant = config.variant;
  return p;
}

/** The index entry for `platform`, or E_NO_MATCHING_PLATFORM listing what there is. */
export function selectFromIndex(index: IndexManifest, platform: Platform, where: string): Descriptor {
  // Attestation manifests (buildkit) carry platform unknown/unknown and are never selected.
  const i = selectPlatform(
    platform,
    index.manifests.map((d) => d.platform),
  );
  const chosen = i === -1 ? undefined : index.manifests[i];
  if (!chosen) {
    const have = indexPlatforms(index).filter((p) => p !== 'unknown/unknown');
    throw new LadingError(
      ErrorCode.NoMatchingPlatform,
      `no image for platform ${formatPlatform(platform)} in ${where}; it has: ${have.join(', ') || 'no platforms'}`,
      { ref: where, expected: formatPlatform(platform), found: have.join(', ') },
    );
  }
  return chosen;
}

/** The platforms an index offers, for messages. */
export function indexPlatforms(index: IndexManifest): string[] {
  return index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : `(no platform: ${d.digest})`));
}

/**
 * The one image selector every command and library function uses: reads the top level, picks the
 * platform's instance from an index, and holds the platform policy — asked for explicitly, a
 * single-platform image of another platform is an error, as it is in skopeo and podman.
 */
export async function selectImage(source: ImageSource, opts: SelectOptions = {}): Promise<SelectedImage> {
  const platform = opts.platform ?? hostPlatform();
  const top = await source.topManifest(opts.signal);
  const parsed = parseManifest(top.bytes, top.mediaType, source.name);
  if (parsed.kind === 'schema1') {
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `${source.name} is a Docker schema1 manifest: lading reads it (inspect --raw) but cannot use its image; push it again with a current client`,
      { ref: source.name, found: parsed.mediaType },
    );
  }
  if (parsed.kind === 'index') {
    const descriptor = selectFromIndex(parsed, platform, source.name);
    const instance = await source.manifest(descriptor.digest, opts.signal);
    const where = `${source.name}@${descriptor.digest}`;
    const manifest = parseManifest(instance.bytes, instance.mediaType, where);
    if (manifest.kind !== 'image') {
      throw new LadingError(
        ErrorCode.ManifestUnsupported,
        `${where} (selected for ${formatPlatform(platform)}) is a ${manifest.mediaType}, not an image manifest`,
        { ref: where },
      );
    }
    const sel: SelectedImage = { top, index: parsed, descriptor, instance, manifest };
    if (descriptor.platform) sel.platform = descriptor.platform;
    return sel;
  }
  const sel: SelectedImage = { top, instance: top, manifest: parsed };
  if (!opts.explicit) return sel;
  const where = `config of ${source.name}`;
  const bytes = await readAtMost(
    await source.blob(parsed.config, { signal: opts.signal }),
    Limits.config,
    where,
  );
  const config = parseConfig(bytes, where);
  sel.config = { bytes, parsed: config };
  const has = configPlatform(config);
  if (has) {
    sel.platform = has;
    if (selectPlatform(platform, [has]) === -1) {
      throw new LadingError(
        ErrorCode.PlatformMismatch,
        `${source.name} is a single-platform image for ${formatPlatform(has)}, not ${formatPlatform(platform)}`,
        { ref: source.name, expected: formatPlatform(platform), found: formatPlatform(has) },
      );
    }
  }
  return sel;
}
