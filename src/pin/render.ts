import { ErrorCode, LadingError } from '../errors/index.ts';
import { fromDigest, nixValue, toNix32, toSri } from '../nix/index.ts';
import { dockerToolsOf, nix2containerOf, type PrefetchResult } from './prefetch.ts';

/** How the pullImage attrset is printed. */
export interface DockerToolsRenderOptions {
  /** `sha256 = "<nix32>"` instead of `hash = "<SRI>"` (nixpkgs 24.11 and older, see docs/nix-parity.md). */
  legacySha256?: boolean;
  /**
   * Print `os` and `arch`: pullImage defaults `arch` to the building host's, so a pin for another
   * platform pasted without them fetches the wrong image. Set when the platform was given, and
   * whenever the selected one is not nix-prefetch-docker's default linux/amd64.
   */
  showPlatform?: boolean;
}

const DOCKER_S2 = 'application/vnd.docker.distribution.manifest.v2+json';

/**
 * Whether a prefetch result needs `os`/`arch` printed (see {@link DockerToolsRenderOptions}): when
 * the platform was given, when it is not linux/amd64, or when the host running lading (likely the
 * one that builds) is not amd64, whose pullImage would default to its own arch.
 */
export function platformNeedsShowing(
  r: Pick<PrefetchResult, 'os' | 'arch'>,
  given: boolean,
  hostArch = 'amd64',
): boolean {
  return given || r.os !== 'linux' || r.arch !== 'amd64' || hostArch !== 'amd64';
}

/**
 * The attrset `nix-prefetch-docker` prints (and `dockerTools.pullImage` takes): its five keys, then
 * `os`/`arch` when asked and `tlsVerify = false` for a registry reached without TLS verification.
 * No `variant` (no nixpkgs release's pullImage takes one): a pin whose os/arch is ambiguous in its
 * index pins the instance digest instead.
 */
export function dockerToolsAttrs(
  r: PrefetchResult,
  opts: DockerToolsRenderOptions = {},
): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = { imageName: r.imageName, imageDigest: r.imageDigest };
  if (opts.legacySha256) out.sha256 = toNix32(dockerToolsOf(r).hash.bytes);
  else out.hash = toSri(dockerToolsOf(r).hash);
  out.finalImageName = r.finalImageName;
  out.finalImageTag = r.finalImageTag;
  if (opts.showPlatform) {
    out.os = r.os;
    out.arch = r.arch;
  }
  if (!r.tlsVerify) out.tlsVerify = false;
  return out;
}

/** nix-prefetch-docker's stdout: a Nix attrset (2-space indent) or, with `json`, the same as JSON. */
export function renderDockerTools(
  r: PrefetchResult,
  opts: DockerToolsRenderOptions & { json?: boolean } = {},
): string {
  const attrs = dockerToolsAttrs(r, opts);
  if (opts.json) return JSON.stringify(attrs, null, 2);
  return nixValue(attrs);
}

/** nix-prefetch-docker's stderr lines (`ImageHash` in nix32 with `legacySha256`, as the old script). */
export function renderInfoLines(r: PrefetchResult, opts: { legacySha256?: boolean } = {}): string[] {
  const h = dockerToolsOf(r).hash;
  return [
    `-> ImageName: ${r.imageName}`,
    `-> ImageDigest: ${r.imageDigest}`,
    `-> FinalImageName: ${r.finalImageName}`,
    `-> FinalImageTag: ${r.finalImageTag}`,
    `-> ImagePath: ${dockerToolsOf(r).storePath}`,
    `-> ImageHash: ${opts.legacySha256 ? toNix32(h.bytes) : toSri(h)}`,
  ];
}

/**
 * The `nix2container.pullImage` attrset (NAR hash of skopeo's `dir:` layout). Its formals have no
 * variant: an ambiguous os/arch has the instance digest pinned instead.
 */
export function nix2containerAttrs(r: PrefetchResult): Record<string, string | boolean> {
  const v: Record<string, string | boolean> = {
    imageName: r.imageName,
    imageDigest: r.imageDigest,
    arch: r.arch,
    sha256: toSri(nix2containerOf(r).hash),
  };
  if (r.os !== 'linux') v.os = r.os;
  if (!r.tlsVerify) v.tlsVerify = false;
  return v;
}

export function renderNix2Container(r: PrefetchResult, opts: { json?: boolean } = {}): string {
  const v = nix2containerAttrs(r);
  return opts.json ? JSON.stringify(v, null, 2) : nixValue(v);
}

/**
 * Where hocker (which `fetchDockerConfig`/`fetchDockerLayer` run) fetches from. hocker joins the
 * registry URL's path with `REPOSITORY/IMAGENAME` and `fetchdocker` asserts that neither part has
 * a `/`; `library` is Docker Hub's namespace only. So: Docker Hub keeps `library/NAME`; deeper
 * repositories put their leading components into the registry URL; a one-component repository
 * elsewhere gets repository `.` (the registry cleans `/v2/./NAME` to `/v2/NAME`, see
 * docs/nix-parity.md).
 */
export function docker2nixLocation(r: PrefetchResult): {
  registry: string;
  repository: string;
  imageName: string;
} {
  const base =
    r.registry === 'docker.io'
      ? 'https://registry-1.docker.io/v2/'
      : `${r.plainHttp ? 'http' : 'https'}://${r.registry}/v2/`;
  const parts = r.repository.split('/');
  const imageName = parts[parts.length - 1]!;
  if (parts.length === 1)
    return { registry: base, repository: r.registry === 'docker.io' ? 'library' : '.', imageName };
  const prefix = parts
    .slice(0, -2)
    .map((p) => `${p}/`)
    .join('');
  return { registry: `${base}${prefix}`, repository: parts[parts.length - 2]!, imageName };
}

/**
 * hocker's `docker2nix` expression: a `fetchdocker` call with nix32 hashes per blob (the registry
 * digests). hocker fetches the config by `tag` and cannot choose a platform, so a multi-platform
 * pin (or one made by digest) uses the instance digest as the tag.
 */
export function renderDocker2Nix(r: PrefetchResult): string {
  // hocker's manifest request accepts Docker schema2 only: a registry answers 404 for anything else.
  const mediaType = (JSON.parse(r.manifest.toString('utf8')) as { mediaType?: unknown }).mediaType;
  if (mediaType !== DOCKER_S2)
    throw new LadingError(
      ErrorCode.ManifestUnsupported,
      `docker2nix: ${r.registry}/${r.repository}@${r.instanceDigest} is ${typeof mediaType === 'string' ? mediaType : 'an OCI manifest'}, but hocker (fetchDockerConfig) asks for Docker schema2 manifests only; use --format dockertools or nix2container`,
    );
  const { registry, repository, imageName } = docker2nixLocation(r);
  const tag = r.indexDigest || !r.tag ? r.instanceDigest : r.tag;
  const q = (s: string) => nixValue(s);
  const layers = r.layers.map(
    (l, i) => `      layer${i} = fetchDockerLayer {
        inherit registry repository imageName;
        layerDigest = ${q(l.digest.slice(l.digest.indexOf(':') + 1))};
        sha256 = ${q(toNix32(fromDigest(l.digest).bytes))};
      };`,
  );
  return `{ fetchDockerConfig, fetchDockerLayer, fetchdocker }:
fetchdocker rec {
  name = ${q(imageName)};
  registry = ${q(registry)};
  repository = ${q(repository)};
  imageName = ${q(imageName)};
  tag = ${q(tag)};
  imageConfig = fetchDockerConfig {
    inherit tag registry repository imageName;
    sha256 = ${q(toNix32(fromDigest(r.config.digest).bytes))};
  };
  imageLayers = let
${layers.join('\n')}
    in [ ${r.layers.map((_, i) => `layer${i}`).join(' ')} ];
}`;
}

/** Everything at once, for programs. */
export function renderJson(r: PrefetchResult, opts: { legacySha256?: boolean } = {}): string {
  return JSON.stringify(
    {
      imageName: r.imageName,
      imageDigest: r.imageDigest,
      indexDigest: r.indexDigest ?? null,
      instanceDigest: r.instanceDigest,
      platform: r.platform,
      finalImageName: r.finalImageName,
      finalImageTag: r.finalImageTag,
      dockerTools: {
        ...dockerToolsAttrs(r, opts),
        os: r.os,
        arch: r.arch,
        ...(r.variant ? { variant: r.variant } : {}),
        storePath: dockerToolsOf(r).storePath,
        archiveSize: dockerToolsOf(r).size,
      },
      nix2container: {
        imageName: r.imageName,
        imageDigest: r.imageDigest,
        arch: r.arch,
        os: r.os,
        sha256: toSri(nix2containerOf(r).hash),
        ...(r.tlsVerify ? {} : { tlsVerify: false }),
        storePath: nix2containerOf(r).storePath,
      },
      manifest: JSON.parse(r.manifest.toString('utf8')),
      blobs: [r.config, ...r.layers].map((d) => ({
        digest: d.digest,
        size: d.size,
        mediaType: d.mediaType,
        nix32: toNix32(fromDigest(d.digest).bytes),
      })),
      cached: r.cached,
      fetchedBytes: r.fetchedBytes,
    },
    null,
    2,
  );
}
