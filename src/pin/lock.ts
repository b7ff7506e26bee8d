import { readFile } from 'node:fs/promises';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { nixAttrName, nixString, parseNixHash, toNix32, toSri } from '../nix/index.ts';
import { writeFileAtomic } from '../util/index.ts';
import type { DecidingLayer } from './lock-extract.ts';
import type { PrefetchResult } from './prefetch.ts';

/** The lock file format version; bump on incompatible changes. */
export const LOCK_VERSION = 1;

/**
 * One locked image. Everything Nix needs is here, so `lading lock nix` works offline.
 * Documented in docs/lock-file.md.
 */
export interface LockEntry {
  /** The reference tracked by `lock update`: image name with tag (`docker.io/library/alpine:3.20`). */
  source: string;
  /** The image name as given (what `dockerTools.pullImage` gets as `imageName`). */
  imageName: string;
  tag: string;
  /** `os/arch[/variant]` selected from multi-arch images. */
  platform: string;
  os: string;
  arch: string;
  /** The selected variant, when the index names one (informational: no pull function takes it). */
  variant?: string;
  /**
   * False when the pin was made without TLS verification (plain HTTP or `--tls-verify=false`):
   * the Nix pull functions then need `tlsVerify = false`. Absent means true.
   */
  tlsVerify?: boolean;
  /** Whether `imageDigest` is the platform's manifest (true) or the top-level/index digest (false). */
  pinInstance: boolean;
  imageDigest: string;
  indexDigest: string | null;
  instanceDigest: string;
  finalImageName: string;
  finalImageTag: string;
  /** Registry host and repository, for `nix2container.pullImageFromManifest`. */
  registry: string;
  repository: string;
  /** Absent for an entry made with `lock add --no-hash` (no layer fetched; for lading's fetchImage). */
  dockerTools?: { hash: string };
  nix2container?: { sha256: string };
  /** `lock add --extract PATH`: the layer that decides each path (extractFile needs it and those above). */
  extract?: Record<string, DecidingLayer>;
  /** The instance manifest, exactly as served (text). */
  manifest: string;
  /** When this entry last changed (ISO 8601). */
  updated: string;
}

export interface LockFile {
  version: typeof LOCK_VERSION;
  images: Record<string, LockEntry>;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** A lock entry name derived from a repository (`library/alpine` → `alpine`). */
export function defaultLockName(repository: string): string {
  const last = repository.split('/').pop() ?? repository;
  const n = last.replace(/[^A-Za-z0-9_-]/g, '-');
  return /^[A-Za-z_]/.test(n) ? n : `image-${n}`;
}

export function checkLockName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `invalid lock entry name ${JSON.stringify(name)}: letters, digits, _ and -, starting with a letter or _`,
    );
  }
}

/** Reads a lock file; a missing file is an empty lock. */
export async function readLock(path: string): Promise<LockFile> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: LOCK_VERSION, images: {} };
    throw new LadingError(ErrorCode.Io, `cannot read ${path}: ${(err as Error).message}`, { path });
  }
  let json: LockFile;
  try {
    json = JSON.parse(raw) as LockFile;
  } catch {
    throw new LadingError(ErrorCode.BadArgument, `${path} is not valid JSON`, { path });
  }
  if (json?.version !== LOCK_VERSION || typeof json.images !== 'object' || json.images === null) {
    throw new LadingError(
      ErrorCode.BadArgument,
      `${path} is not a lading lock file of version ${LOCK_VERSION}`,
      { path },
    );
  }
  return json;
}

/** Writes a lock file atomically, keys sorted, so diffs stay small. */
export async function writeLock(path: string, lock: LockFile): Promise<void> {
  const images: Record<string, LockEntry> = {};
  for (const k of Object.keys(lock.images).sort()) images[k] = lock.images[k]!;
  await writeFileAtomic(path, `${JSON.stringify({ version: LOCK_VERSION, images }, null, 2)}\n`);
}

/** Builds a lock entry from a prefetch. */
export function lockEntryFrom(r: PrefetchResult, tag: string, pinInstance: boolean): LockEntry {
  return {
    source: `${r.registry}/${r.repository}:${tag}`,
    imageName: r.imageName,
    tag,
    platform: r.platform,
    os: r.os,
    arch: r.arch,
    ...(r.variant ? { variant: r.variant } : {}),
    ...(r.tlsVerify ? {} : { tlsVerify: false }),
    pinInstance,
    imageDigest: r.imageDigest,
    indexDigest: r.indexDigest ?? null,
    instanceDigest: r.instanceDigest,
    finalImageName: r.finalImageName,
    finalImageTag: r.finalImageTag,
    registry: r.registry,
    repository: r.repository,
    dockerTools: r.dockerTools && { hash: toSri(r.dockerTools.hash) },
    nix2container: r.nix2container && { sha256: toSri(r.nix2container.hash) },
    manifest: r.manifest.toString('utf8'),
    updated: new Date().toISOString(),
  };
}

/** The registry host nix2container should fetch blobs from. */
function registryUrl(e: LockEntry): string {
  return e.registry === 'docker.io' ? 'registry-1.docker.io' : e.registry;
}

/**
 * The Nix file `lading lock nix` writes: every image through `dockerTools.pullImage` and through
 * `nix2container.pullImageFromManifest` (whose per-blob hashes are the registry digests). The
 * manifests are embedded with `builtins.toFile`, so the file stands alone.
 */
export function renderLockNix(lock: LockFile, opts: { legacySha256?: boolean } = {}): string {
  const lines = [
    '# Generated by `lading lock nix` from lading.lock.json. Do not edit; run `lading lock update`.',
    '{ dockerTools ? null, nix2container ? null }:',
    '{',
  ];
  for (const name of Object.keys(lock.images).sort()) {
    const e = lock.images[name]!;
    const tls = e.tlsVerify === false ? ['      tlsVerify = false;'] : [];
    const manifestFile = `builtins.toFile ${nixString(`${name}-manifest.json`)} ${nixString(e.manifest)}`;
    lines.push(`  ${nixAttrName(name)} = {`);
    // An entry pinned with --no-hash has no hashes for the skopeo-based functions.
    if (e.dockerTools)
      lines.push(
        '    dockerTools = dockerTools.pullImage {',
        `      imageName = ${nixString(e.imageName)};`,
        `      imageDigest = ${nixString(e.imageDigest)};`,
        // nixpkgs 24.11 and older: pullImage takes only `sha256` (docs/nix-parity.md).
        opts.legacySha256
          ? `      sha256 = ${nixString(toNix32(parseNixHash(e.dockerTools.hash).bytes))};`
          : `      hash = ${nixString(e.dockerTools.hash)};`,
        `      finalImageName = ${nixString(e.finalImageName)};`,
        `      finalImageTag = ${nixString(e.finalImageTag)};`,
        `      os = ${nixString(e.os)};`,
        `      arch = ${nixString(e.arch)};`,
        ...tls,
        '    };',
      );
    lines.push(
      '    nix2container = nix2container.pullImageFromManifest {',
      `      imageName = ${nixString(e.repository)};`,
      `      imageManifest = ${manifestFile};`,
      `      imageTag = ${nixString(e.tag)};`,
      `      registryUrl = ${nixString(registryUrl(e))};`,
      `      os = ${nixString(e.os)};`,
      `      arch = ${nixString(e.arch)};`,
      ...tls,
      '    };',
    );
    if (e.nix2container)
      lines.push(
        `    nix2containerPullImage = nix2container.pullImage {`,
        `      imageName = ${nixString(e.imageName)};`,
        `      imageDigest = ${nixString(e.imageDigest)};`,
        `      sha256 = ${nixString(e.nix2container.sha256)};`,
        `      os = ${nixString(e.os)};`,
        `      arch = ${nixString(e.arch)};`,
        ...tls,
        '    };',
      );
    lines.push('  };');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
