import { type Digest, parseDigest } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { DESCRIPTOR_FIELDS, PLATFORM_FIELDS, refuseGoCaseVariants } from './go-fields.ts';
import type { Platform } from './platform.ts';

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}

function invalid(where: string, why: string): LadingError {
  return new LadingError(ErrorCode.ManifestInvalid, `malformed manifest: ${where}: ${why}`);
}

/** Validates an untrusted JSON value as a descriptor; `where` names it in errors (`layers[2]`). */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(where, 'not an object');
  const v = value as Record<string, unknown>;
  refuseGoCaseVariants(v, DESCRIPTOR_FIELDS, `descriptor ${where}`);
  if (typeof v.mediaType !== 'string' || v.mediaType === '') throw invalid(where, 'missing mediaType');
  if (typeof v.digest !== 'string') throw invalid(where, 'missing digest');
  let digest: Digest;
  try {
    digest = parseDigest(v.digest, `${where}.digest`);
  } catch (err) {
    throw invalid(where, (err as Error).message);
  }
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw invalid(where, 'size must be a non-negative integer');
  }
  const d: Descriptor = { mediaType: v.mediaType, digest, size: v.size };
  if (v.platform !== undefined) {
    const p = v.platform as Record<string, unknown>;
    if (
      typeof p !== 'object' ||
      p === null ||
      typeof p.os !== 'string' ||
      typeof p.architecture !== 'string'
    ) {
      throw invalid(where, 'platform needs os and architecture');
    }
    refuseGoCaseVariants(p, PLATFORM_FIELDS, `platform of ${where}`);
    d.platform = { os: p.os, architecture: p.architecture };
    if (typeof p.variant === 'string' && p.variant !== '') d.platform.variant = p.variant;
    if (typeof p['os.version'] === 'string') d.platform['os.version'] = p['os.version'];
  }
  if (v.annotations !== undefined && typeof v.annotations === 'object' && v.annotations !== null) {
    d.annotations = v.annotations as Record<string, string>;
  }
  if (Array.isArray(v.urls)) d.urls = v.urls.filter((u): u is string => typeof u === 'string');
  if (typeof v.artifactType === 'string') d.artifactType = v.artifactType;
  return d;
}
