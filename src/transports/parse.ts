import { ErrorCode, LadingError } from '../errors/index.ts';
import { parseReference, type Reference } from '../reference/index.ts';
import { splitPathAndTag } from './oci-layout.ts';

/** A parsed image location in containers-transports(5) syntax. */
export type ImageLocation =
  | { transport: 'docker'; ref: Reference }
  | { transport: 'oci'; path: string; tag?: string }
  | { transport: 'oci-archive'; path: string; tag?: string }
  | { transport: 'dir'; path: string }
  | { transport: 'docker-archive'; path: string; ref?: Reference; index?: number }
  | { transport: 'docker-daemon'; ref: Reference }
  | { transport: 'podman'; ref: Reference }
  | { transport: 'nix2container'; path: string };

const UNSUPPORTED = new Set(['containers-storage', 'ostree', 'sif', 'tarball', 'docker-image']);

export const TRANSPORTS = [
  'docker',
  'oci',
  'oci-archive',
  'dir',
  'docker-archive',
  'docker-daemon',
  'podman',
  'nix2container',
] as const;

function bad(input: string, why: string): LadingError {
  return new LadingError(
    ErrorCode.BadReference,
    `invalid image location ${JSON.stringify(input)}: ${why} (expected docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG|:@N], dir:DIR, docker-daemon:NAME:TAG, podman:NAME:TAG, nix2container:IMAGE.json, or a bare reference)`,
    { ref: input },
  );
}

/**
 * Parses `transport:details` as skopeo does; a string without a known transport prefix is a
 * registry reference (`docker://` implied). `-` as FILE means stdin/stdout where a stream serves.
 */
export function parseLocation(input: string): ImageLocation {
  if (input.startsWith('docker://'))
    return { transport: 'docker', ref: parseReference(input.slice('docker://'.length)) };
  const colon = input.indexOf(':');
  const prefix = colon === -1 ? '' : input.slice(0, colon);
  const details = colon === -1 ? '' : input.slice(colon + 1);
  switch (prefix) {
    case 'oci':
    case 'oci-archive': {
      const { path, tag } = splitPathAndTag(details);
      if (!path) throw bad(input, `${prefix}: needs a path`);
      return tag ? { transport: prefix, path, tag } : { transport: prefix, path };
    }
    case 'dir':
      if (!details) throw bad(input, 'dir: needs a path');
      return { transport: 'dir', path: details };
    case 'nix2container':
      if (!details) throw bad(input, 'nix2container: needs the image.json path');
      return { transport: 'nix2container', path: details };
    case 'docker-archive': {
      if (!details) throw bad(input, 'docker-archive: needs a file');
      const i = details.indexOf(':');
      if (i === -1) return { transport: 'docker-archive', path: details };
      const path = details.slice(0, i);
      const rest = details.slice(i + 1);
      if (rest.startsWith('@')) {
        const n = Number(rest.slice(1));
        if (!Number.isInteger(n) || n < 0) throw bad(input, `invalid image index ${JSON.stringify(rest)}`);
        return { transport: 'docker-archive', path, index: n };
      }
      return { transport: 'docker-archive', path, ref: parseReference(rest) };
    }
    case 'docker-daemon':
    case 'podman':
      if (!details) throw bad(input, `${prefix}: needs NAME:TAG`);
      return { transport: prefix, ref: parseReference(details) };
    case 'docker':
      throw bad(input, 'write docker://REF');
    default:
      if (UNSUPPORTED.has(prefix)) throw bad(input, `transport ${JSON.stringify(prefix)} is not supported`);
      try {
        return { transport: 'docker', ref: parseReference(input) };
      } catch (err) {
        if (/^[a-z][a-z0-9-]*$/.test(prefix) && (details.startsWith('/') || details.startsWith('.'))) {
          throw bad(input, `unknown transport ${JSON.stringify(prefix)}`);
        }
        throw bad(input, (err as Error).message);
      }
  }
}

/** The canonical string of a location, for messages. */
export function formatLocation(loc: ImageLocation): string {
  switch (loc.transport) {
    case 'docker':
      return `docker://${loc.ref}`;
    case 'oci':
    case 'oci-archive':
      return `${loc.transport}:${loc.path}${loc.tag ? `:${loc.tag}` : ''}`;
    case 'dir':
      return `dir:${loc.path}`;
    case 'nix2container':
      return `nix2container:${loc.path}`;
    case 'docker-archive':
      return `docker-archive:${loc.path}${loc.ref ? `:${loc.ref}` : loc.index !== undefined ? `:@${loc.index}` : ''}`;
    default:
      return `${loc.transport}:${loc.ref}`;
  }
}
