export { GoRaw, GoStruct, type GoValue, goCompact, goMarshal, goString, topLevelRaw } from './go-json.ts';
export { GO_TAR_END, type GoTarHeader, goTarHeader, goTarPadding } from './go-tar.ts';
export {
  type ArchiveLayer,
  type DockerArchiveInput,
  dockerArchiveChunks,
  dockerArchiveHash,
  dockerArchiveStream,
  legacyMetadata,
  measureLayers,
  writeDockerArchive,
} from './writer.ts';
