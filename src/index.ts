/**
 * lading's public API: a curated list of named exports. The CLI is a thin layer over these.
 * Pure Nix primitives are also available as `lading/nix`.
 */
export { type AuthFile, type Credential, login, logout, resolveCredential } from './auth/index.ts';
export { BlobCache, type BlobCacheOptions, IndexStore } from './cache/index.ts';
export {
  type CopyEvent,
  type CopyOptions,
  type CopyResult,
  copyImage,
  type ImageLayers,
  imageLayers,
  openSink,
  openSource,
} from './copy/index.ts';
export { type Digest, parseDigest, sha256, VerifyStream } from './digest/index.ts';
export { ErrorCode, hasCode, isLadingError, LadingError } from './errors/index.ts';
export {
  type Descriptor,
  formatPlatform,
  type ImageConfig,
  type ImageManifest,
  type ImageSink,
  type ImageSource,
  type IndexManifest,
  type Manifest,
  MediaType,
  manifestDigest,
  type Platform,
  parseConfig,
  parseManifest,
  parsePlatform,
  type RawManifest,
  type SelectedImage,
  type SelectOptions,
  selectImage,
} from './image/index.ts';
export {
  decompress,
  type ExportResult,
  type ExtractResult,
  exportRootfs,
  extractPaths,
  type LayerBlob,
  type UnpackResult,
  unpackRootfs,
} from './layers/index.ts';
export * as nix from './nix/index.ts';
export {
  addToLock,
  dockerToolsOf,
  type LockAdded,
  type LockAddRequest,
  type LockEntry,
  type LockFile,
  type LockOptions,
  type LockUpdate,
  type LockUpdateOptions,
  nix2containerOf,
  type PrefetchInput,
  type PrefetchResult,
  prefetch,
  readLock,
  removeFromLock,
  renderDockerTools,
  renderLockNix,
  renderNix2Container,
  updateLock,
  writeLock,
} from './pin/index.ts';
export { parseReference, type Reference } from './reference/index.ts';
export {
  RegistryClient,
  type RegistryClientOptions,
  type RegistryCredential,
  RegistryPool,
  type RegistryPoolOptions,
  type ResolvedImage,
  resolveImage,
} from './registry/index.ts';
export {
  dockerArchiveHash,
  dockerArchiveStream,
  writeDockerArchive,
} from './transports/docker-archive/index.ts';
export {
  DirSink,
  DirSource,
  DockerArchiveSink,
  DockerArchiveSource,
  type ImageLocation,
  OciArchiveSink,
  OciArchiveSource,
  OciLayoutSink,
  OciLayoutSource,
  parseLocation,
  RegistrySink,
  RegistrySource,
} from './transports/index.ts';
