import type { BlobCache } from '../cache/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import type { ImageSink, ImageSource } from '../image/index.ts';
import type { RegistryPool } from '../registry/index.ts';
import {
  DaemonSink,
  DaemonSource,
  DirSink,
  DirSource,
  DockerArchiveSink,
  DockerArchiveSource,
  dockerSocket,
  formatLocation,
  type ImageLocation,
  Nix2containerSource,
  OciArchiveSink,
  OciArchiveSource,
  OciLayoutSink,
  OciLayoutSource,
  RegistrySink,
  RegistrySource,
} from '../transports/index.ts';

export interface OpenOptions {
  pool: RegistryPool;
  cache?: BlobCache;
  /** Standard input, for `-` as an archive path. */
  stdin?: NodeJS.ReadableStream;
  /** Environment (DOCKER_HOST for docker-daemon:). */
  env?: NodeJS.ProcessEnv;
}

function unsupported(loc: ImageLocation, as: string): LadingError {
  return new LadingError(ErrorCode.Transport, `${formatLocation(loc)} cannot be used as ${as} yet`, {
    ref: formatLocation(loc),
  });
}

/** Opens an image location for reading. */
export function openSource(loc: ImageLocation, opts: OpenOptions): ImageSource {
  switch (loc.transport) {
    case 'docker':
      return new RegistrySource(opts.pool.forRef(loc.ref), loc.ref, { cache: opts.cache });
    case 'oci':
      return new OciLayoutSource(loc.path, loc.tag);
    case 'dir':
      return new DirSource(loc.path);
    case 'nix2container':
      return new Nix2containerSource(loc.path);
    case 'oci-archive':
      return new OciArchiveSource(loc.path, loc.tag, opts.stdin);
    case 'docker-archive':
      return new DockerArchiveSource(loc.path, { ref: loc.ref, index: loc.index, stdin: opts.stdin });
    case 'docker-daemon':
      return new DaemonSource(loc.ref, { kind: 'docker-api', socket: dockerSocket(opts.env ?? {}) });
    case 'podman':
      return new DaemonSource(loc.ref, { kind: 'podman' });
    default:
      throw unsupported(loc, 'a source');
  }
}

export interface SinkOptions extends OpenOptions {
  /** Extra tags for registry destinations. */
  tags?: string[];
  /** Standard output, for `-` as an archive path. */
  stdout?: NodeJS.WritableStream;
  /** Where the image comes from (enables cross-repository mounts on the same registry). */
  source?: ImageLocation;
}

/** Opens an image location for writing. */
export function openSink(loc: ImageLocation, opts: SinkOptions): ImageSink {
  switch (loc.transport) {
    case 'docker': {
      const from =
        opts.source?.transport === 'docker'
          ? { registry: opts.source.ref.registry, repository: opts.source.ref.repository }
          : undefined;
      return new RegistrySink(opts.pool.forRef(loc.ref), loc.ref, { tags: opts.tags, mountFrom: from });
    }
    case 'oci':
      return new OciLayoutSink(loc.path, loc.tag);
    case 'dir':
      return new DirSink(loc.path);
    case 'oci-archive':
      return new OciArchiveSink(loc.path, loc.tag, opts.stdout);
    case 'docker-archive':
      return new DockerArchiveSink(loc.path, loc.ref, opts.stdout);
    case 'docker-daemon':
      return new DaemonSink(loc.ref, { kind: 'docker-api', socket: dockerSocket(opts.env ?? {}) });
    case 'podman':
      return new DaemonSink(loc.ref, { kind: 'podman' });
    default:
      throw unsupported(loc, 'a destination');
  }
}
