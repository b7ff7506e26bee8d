import { createHash } from 'node:crypto';
import type { Digest } from '../digest/index.ts';
import { parseDigest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { jsonWhy, parseBoundedJson } from '../util/index.ts';
import { type Descriptor, parseDescriptor } from './descriptor.ts';
import { MANIFEST_FIELDS, refuseGoCaseVariants } from './go-fields.ts';
import { isImageManifestMediaType, isIndexMediaType, isSchema1MediaType, MediaType } from './media-types.ts';

/** An OCI image index or Docker manifest list. */
export interface IndexManifest {
  kind: 'index';
  mediaType: string;
  schemaVersion: 2;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** An OCI image manifest or Docker schema2 manifest. */
export interface ImageManifest {
  kind: 'image';
  mediaType: string;
  schemaVersion: 2;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
}

/** A legacy Docker schema1 manifest (read-only: layers bottom-first, no config blob). */
export interface Schema1Manifest {
  kind: 'schema1';
  mediaType: string;
  schemaVersion: 1;
  name: string;
  tag: string;
  architecture: string;
  /** Layer digests, bottom layer first (schema1 lists them top first). */
  layers: Digest[];
  /** Raw `v1Compatibility` strings, top first as in the manifest. */
  history: string[];
}

export type Manifest = IndexManifest | ImageManifest | Schema1Manifest;

function invalid(why: string, ref?: string): LadingError {
  return new LadingError(ErrorCode.ManifestInvalid, `malformed manifest${ref ? ` of ${ref}` : ''}: ${why}`, {
    ref,
  });
}

/** The manifest fields that decide a document's kind, by kind (containers/image's AllowedManifestFields). */
const KIND_FIELDS = { image: ['config', 'layers'], index: ['manifests'], schema1: ['fsLayers'] } as const;

/** A key Go would decode as a field: present and not `null` (a Go `any` stays nil for null). */
function present(json: Record<string, unknown>, field: string): boolean {
  return json[field] !== undefined && json[field] !== null;
}

/**
 * Refuses a document whose fields belong to another kind than `mediaType` says (CVE-2021-41190):
 * `manifests` next to `config`/`layers`, an index media type with layers, and so on, as
 * containers/image, containerd and go-containerregistry do.
 */
function refuseAmbiguous(json: Record<string, unknown>, mediaType: string, ref?: string): void {
  const kind = isIndexMediaType(mediaType)
    ? 'index'
    : isImageManifestMediaType(mediaType)
      ? 'image'
      : isSchema1MediaType(mediaType)
        ? 'schema1'
        : undefined;
  if (!kind) return;
  const allowed: readonly string[] = KIND_FIELDS[kind];
  const unexpected = Object.values(KIND_FIELDS)
    .flat()
    .filter((f) => !allowed.includes(f) && present(json, f));
  if (unexpected.length) {
    throw new LadingError(
      ErrorCode.ManifestInvalid,
      `ambiguous manifest${ref ? ` of ${ref}` : ''}: fields ${unexpected.join(', ')} do not belong in a ${mediaType}; refusing it (its kind must not depend on who reads it)`,
      { ref, found: unexpected.join(','), expected: mediaType },
    );
  }
}

/**
 * Works out a manifest's media type: its own `mediaType` field, else from its shape (as
 * containers/image `GuessMIMEType`). Never from the served Content-Type (`_contentType` is ignored):
 * the same bytes, so the same digest, must mean the same thing to every reader. Throws
 * E_MANIFEST_INVALID for a document whose fields contradict its kind or fit two kinds.
 */
export function detectMediaType(json: Record<string, unknown>, _contentType?: string, ref?: string): string {
  let mediaType: string;
  if (typeof json.mediaType === 'string' && json.mediaType !== '') mediaType = json.mediaType;
  else if (json.schemaVersion === 1)
    mediaType = 'signatures' in json ? MediaType.DockerSchema1Signed : MediaType.DockerSchema1;
  else if (present(json, 'manifests')) mediaType = MediaType.OciIndex;
  else if (present(json, 'config') || present(json, 'layers')) {
    const config = json.config as { mediaType?: unknown } | null | undefined;
    mediaType =
      config?.mediaType === MediaType.DockerConfig ? MediaType.DockerManifest : MediaType.OciManifest;
  } else mediaType = 'application/octet-stream';
  refuseAmbiguous(json, mediaType, ref);
  return mediaType;
}

/**
 * Parses and validates manifest bytes. Every digest is validated before it can reach a URL or path.
 * Throws E_MANIFEST_INVALID (malformed) or E_MANIFEST_UNSUPPORTED (unknown media type).
 */
export function parseManifest(bytes: Uint8Array, contentType?: string, ref?: string): Manifest {
  let json: unknown;
  try {
    json = parseBoundedJson(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw invalid(`${jsonWhy(err)}`, ref);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw invalid('not a JSON object', ref);
  const obj = json as Record<string, unknown>;
  refuseGoCaseVariants(obj, MANIFEST_FIELDS, `manifest${ref ? ` of ${ref}` : ''}`);
  const mediaType = detectMediaType(obj, contentType, ref);
  if (isIndexMediaType(mediaType)) {
    if (obj.schemaVersion !== 2)
      throw invalid(`schemaVersion must be 2, got ${JSON.stringify(obj.schemaVersion)}`, ref);
    if (!Array.isArray(obj.manifests)) throw invalid('index has no manifests array', ref);
    const m: IndexManifest = {
      kind: 'index',
      mediaType,
      schemaVersion: 2,
      manifests: obj.manifests.map((d, i) => parseDescriptor(d, `manifests[${i}]`)),
    };
    if (isPlainObject(obj.annotations)) m.annotations = obj.annotations as Record<string, string>;
    return m;
  }
  if (isImageManifestMediaType(mediaType)) {
    if (obj.schemaVersion !== 2)
      throw invalid(`schemaVersion must be 2, got ${JSON.stringify(obj.schemaVersion)}`, ref);
    if (!Array.isArray(obj.layers)) throw invalid('manifest has no layers array', ref);
    const m: ImageManifest = {
      kind: 'image',
      mediaType,
      schemaVersion: 2,
      config: parseDescriptor(obj.config, 'config'),
      layers: obj.layers.map((d, i) => parseDescriptor(d, `layers[${i}]`)),
    };
    if (isPlainObject(obj.annotations)) m.annotations = obj.annotations as Record<string, string>;
    if (obj.subject !== undefined) m.subject = parseDescriptor(obj.subject, 'subject');
    return m;
  }
  if (isSchema1MediaType(mediaType)) {
    if (obj.schemaVersion !== 1) throw invalid('schema1 manifest must have schemaVersion 1', ref);
    if (!Array.isArray(obj.fsLayers)) throw invalid('schema1 manifest has no fsLayers', ref);
    const layers = obj.fsLayers.map((l, i) => {
      const sum = (l as Record<string, unknown>)?.blobSum;
      if (typeof sum !== 'string') throw invalid(`fsLayers[${i}] has no blobSum`, ref);
      return parseDigest(sum, `fsLayers[${i}].blobSum`);
    });
    const history = Array.isArray(obj.history)
      ? obj.history.map((h) => String((h as Record<string, unknown>)?.v1Compatibility ?? ''))
      : [];
    return {
      kind: 'schema1',
      mediaType,
      schemaVersion: 1,
      name: String(obj.name ?? ''),
      tag: String(obj.tag ?? ''),
      architecture: String(obj.architecture ?? ''),
      layers: layers.reverse(),
      history,
    };
  }
  throw new LadingError(
    ErrorCode.ManifestUnsupported,
    `unsupported manifest media type ${JSON.stringify(mediaType)}${ref ? ` for ${ref}` : ''}`,
    { ref, found: mediaType },
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The digest a registry gives a manifest: sha256 of the bytes, except signed schema1 manifests,
 * whose digest covers the payload without the JWS signatures.
 */
export function manifestDigest(bytes: Uint8Array, algorithm: 'sha256' | 'sha512' = 'sha256'): Digest {
  const payload = schema1Payload(bytes) ?? bytes;
  return `${algorithm}:${createHash(algorithm).update(payload).digest('hex')}` as Digest;
}

/** For a signed schema1 manifest, the canonical payload its digest is computed over. */
export function schema1Payload(bytes: Uint8Array): Buffer | undefined {
  const text = Buffer.from(bytes).toString('utf8');
  if (!text.includes('"signatures"')) return undefined;
  try {
    const json = JSON.parse(text) as { schemaVersion?: number; signatures?: { protected?: string }[] };
    if (json.schemaVersion !== 1 || !Array.isArray(json.signatures) || !json.signatures[0]?.protected)
      return undefined;
    const header = JSON.parse(Buffer.from(json.signatures[0].protected, 'base64url').toString('utf8')) as {
      formatLength?: number;
      formatTail?: string;
    };
    if (typeof header.formatLength !== 'number' || typeof header.formatTail !== 'string') return undefined;
    return Buffer.concat([
      Buffer.from(bytes).subarray(0, header.formatLength),
      Buffer.from(header.formatTail, 'base64url'),
    ]);
  } catch {
    return undefined;
  }
}
