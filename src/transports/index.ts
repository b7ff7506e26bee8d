export { DaemonSink, DaemonSource, dockerSocket, type Engine } from './daemon.ts';
export { type PathState, pathState } from './destination.ts';
export { DIR_VERSION, DirSink, DirSource } from './dir.ts';
export { GoStruct, type GoValue, goMarshal } from './docker-archive/index.ts';
export { archiveInputFor, DockerArchiveSink } from './docker-archive-sink.ts';
export { DockerArchiveSource } from './docker-archive-source.ts';
export { Nix2containerSource } from './nix2container.ts';
export { OciArchiveSink, OciArchiveSource } from './oci-archive.ts';
export { OciLayoutSink, OciLayoutSource, splitPathAndTag } from './oci-layout.ts';
export { formatLocation, type ImageLocation, parseLocation, TRANSPORTS } from './parse.ts';
export {
  RegistrySink,
  type RegistrySinkOptions,
  RegistrySource,
  type RegistrySourceOptions,
} from './registry.ts';
export { indexTar, normaliseMemberName, type TarMember } from './tar-index.ts';
export type { TransportRef } from './transport.ts';
