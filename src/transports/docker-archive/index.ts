export { GoRaw, GoStruct, type GoValue, goCompact, goMarshal, goString, topLevelRaw } from './go-json.ts';
export {
  type ArchiveLayer,
  archiveTail,
  type DockerArchiveInput,
  dockerArchiveChunks,
  dockerArchiveHash,
  dockerArchiveStream,
  file as archiveFileHeader,
  legacyMetadata,
  measureLayers,
  writeDockerArchive,
  writeDockerArchiveParallel,
} from './writer.ts';
