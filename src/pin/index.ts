export {
  LOCK_VERSION,
  type LockEntry,
  type LockFile,
  readLock,
  renderLockNix,
  writeLock,
} from './lock.ts';
export type { DecidingLayer } from './lock-extract.ts';
export { renderLockNixLading } from './lock-lading.ts';
export {
  addToLock,
  type LockAdded,
  type LockAddRequest,
  type LockOptions,
  type LockUpdate,
  type LockUpdateOptions,
  removeFromLock,
  updateLock,
} from './lock-update.ts';
export {
  dockerToolsOf,
  nix2containerName,
  nix2containerOf,
  type PrefetchInput,
  type PrefetchResult,
  prefetch,
  pullImageName,
} from './prefetch.ts';
export { hashesFor, PREFETCH_FORMATS, type PrefetchFormat } from './prefetch-format.ts';
export {
  type DockerToolsRenderOptions,
  docker2nixLocation,
  dockerToolsAttrs,
  nix2containerAttrs,
  platformNeedsShowing,
  renderDocker2Nix,
  renderDockerTools,
  renderInfoLines,
  renderJson,
  renderNix2Container,
} from './render.ts';
