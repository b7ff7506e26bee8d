export { GoRaw, GoStruct, type GoValue, goCompact, goMarshal, goString, topLevelRaw } from './go-json.ts';
export {
  type ArchiveLayer,
  type DockerArchiveInput,
  dockerArchiveChunks,
  dockerArchiveHash,
  dockerArchiveStream,
  legacyMetadata,
  measureLayers,
  writeDockerArchive,
  writeDockerArchiveParallel,
} from './writer.ts';
