export {
  type Compression,
  decompress,
  decompressRing,
  detectCompression,
  INFLATE_CHUNK,
} from './compression.ts';
export { type ExportOptions, type ExportResult, exportRootfs } from './export.ts';
export { type ExtractedPath, type ExtractOptions, type ExtractResult, extractPaths } from './extract-file.ts';
export { GO_TAR_END, type GoTarHeader, goTarHeader, goTarPadding } from './go-tar.ts';
export { inflatePieces, syncInflateWorks } from './inflate-sync.ts';
export { GZIP_BLOCK, type ParallelGzipOptions, parallelGzip } from './parallel-gzip.ts';
export {
  type PermRule,
  planFingerprint,
  planReproducibleTar,
  reproducibleTar,
  reproducibleTarStream,
  type TarPath,
  type TarPathOptions,
  type TarPlan,
  tarDestination,
} from './reproducible-tar.ts';
export { assertComplete, type UnpackOptions, type UnpackResult, unpackRootfs } from './rootfs.ts';
export {
  type EntryType,
  hasDotDot,
  normaliseEntryName,
  pipeBody,
  readTar,
  type TarEntry,
} from './tar-read.ts';
export type { EntryProblem, LayerBlob } from './types.ts';
