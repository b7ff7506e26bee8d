import { fromDigest, type NixValue, nixValue, toNix32, toSri } from '../nix/index.ts';
import { dockerToolsOf, nix2containerOf, type PrefetchResult } from './prefetch.ts';

/** The attrset `nix-prefetch-docker` prints (and `dockerTools.pullImage` takes). */
export function dockerToolsAttrs(
  r: PrefetchResult,
  opts: { legacySha256?: boolean } = {},
): Record<string, string> {
  const out: Record<string, string> = { imageName: r.imageName, imageDigest: r.imageDigest };
  if (opts.legacySha256) out.sha256 = toNix32(dockerToolsOf(r).hash.bytes);
  else out.hash = toSri(dockerToolsOf(r).hash);
  out.finalImageName = r.finalImageName;
  out.finalImageTag = r.finalImageTag;
  return out;
}

/** nix-prefetch-docker's stdout: a Nix attrset (2-space indent) or, with `json`, the same as JSON. */
export function renderDockerTools(
  r: PrefetchResult,
  opts: { json?: boolean; legacySha256?: boolean } = {},
): string {
  const attrs = dockerToolsAttrs(r, opts);
  if (opts.json) return JSON.stringify(attrs, null, 2);
  return nixValue(attrs);
}

/** nix-prefetch-docker's stderr lines. */
export function renderInfoLines(r: PrefetchResult): string[] {
  return [
    `-> ImageName: ${r.imageName}`,
    `-> ImageDigest: ${r.imageDigest}`,
    `-> FinalImageName: ${r.finalImageName}`,
    `-> FinalImageTag: ${r.finalImageTag}`,
    `-> ImagePath: ${dockerToolsOf(r).storePath}`,
    `-> ImageHash: ${toSri(dockerToolsOf(r).hash)}`,
  ];
}

/** The `nix2container.pullImage` attrset (NAR hash of skopeo's `dir:` layout). */
export function renderNix2Container(r: PrefetchResult): string {
  const v: Record<string, NixValue> = {
    imageName: r.imageName,
    imageDigest: r.imageDigest,
    arch: r.arch,
    sha256: toSri(nix2containerOf(r).hash),
  };
  if (r.os !== 'linux') v.os = r.os;
  return nixValue(v);
}

/** hocker's `docker2nix` expression: a `fetchdocker` call with nix32 hashes per blob (the registry digests). */
export function renderDocker2Nix(r: PrefetchResult): string {
  const registry =
    r.registry === 'docker.io' ? 'https://registry-1.docker.io/v2/' : `https://${r.registry}/v2/`;
  const slash = r.repository.indexOf('/');
  const repository = slash === -1 ? 'library' : r.repository.slice(0, slash);
  const imageName = slash === -1 ? r.repository : r.repository.slice(slash + 1);
  const tag = r.tag ?? r.finalImageTag;
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
  name = ${q(imageName.split('/').pop() ?? imageName)};
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
        storePath: dockerToolsOf(r).storePath,
        archiveSize: dockerToolsOf(r).size,
      },
      nix2container: {
        imageName: r.imageName,
        imageDigest: r.imageDigest,
        arch: r.arch,
        os: r.os,
        sha256: toSri(nix2containerOf(r).hash),
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
