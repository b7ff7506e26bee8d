import { ErrorCode, LadingError } from '../errors/index.ts';

/**
 * Go's encoding/json (skopeo, containerd, go-containerregistry) matches a JSON key to a struct
 * field case-insensitively (bytes.EqualFold: `Layers`, `LAYERS`, and `K`/`ſ` for k/s all hit
 * `layers`), the last matching key winning; JSON.parse keeps every key apart. So
 * `{"layers":[A],"Layers":[B]}` is B to Go tools and A to a plain reader. lading refuses a
 * document with a key that Go would read as one of the struct fields it names without being that
 * exact name. (Exact duplicates need nothing: JSON.parse keeps the last one, as Go does.)
 */

/** Go's case folding of a key, for comparing with ASCII field names. */
export function goFoldKey(key: string): string {
  return key
    .replace(/\u212a/g, 'k')
    .replace(/\u017f/g, 's')
    .replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Throws E_MANIFEST_INVALID when a key of `obj` is a case variant of one of `fields`. */
export function refuseGoCaseVariants(
  obj: Record<string, unknown>,
  fields: readonly string[],
  where: string,
): void {
  for (const key of Object.keys(obj)) {
    if (fields.includes(key)) continue;
    const folded = goFoldKey(key);
    const field = fields.find((f) => f.toLowerCase() === folded);
    if (field !== undefined) {
      throw new LadingError(
        ErrorCode.ManifestInvalid,
        `ambiguous ${where}: key ${JSON.stringify(key)} is read as ${JSON.stringify(field)} by Go tools (skopeo, containerd) but not by exact-match readers; refusing it`,
        { found: key, expected: field },
      );
    }
  }
}

/** Struct fields of a manifest, index or schema1 document (top level). */
export const MANIFEST_FIELDS = [
  'schemaVersion',
  'mediaType',
  'artifactType',
  'config',
  'layers',
  'manifests',
  'annotations',
  'subject',
  'fsLayers',
  'history',
  'signatures',
  'name',
  'tag',
  'architecture',
] as const;

/** Struct fields of a descriptor. */
export const DESCRIPTOR_FIELDS = [
  'mediaType',
  'digest',
  'size',
  'urls',
  'annotations',
  'platform',
  'artifactType',
  'data',
] as const;

/** Struct fields of a platform. */
export const PLATFORM_FIELDS = [
  'architecture',
  'os',
  'os.version',
  'os.features',
  'variant',
  'features',
] as const;

/** Struct fields of an image config that lading reads (top level, `config`, `rootfs`). */
export const CONFIG_FIELDS = [
  'created',
  'author',
  'architecture',
  'os',
  'os.version',
  'os.features',
  'variant',
  'config',
  'rootfs',
  'history',
] as const;
export const CONTAINER_CONFIG_FIELDS = [
  'User',
  'ExposedPorts',
  'Env',
  'Entrypoint',
  'Cmd',
  'Volumes',
  'WorkingDir',
  'Labels',
  'StopSignal',
  'ArgsEscaped',
  'Healthcheck',
  'OnBuild',
  'Shell',
] as const;
export const ROOTFS_FIELDS = ['type', 'diff_ids'] as const;
