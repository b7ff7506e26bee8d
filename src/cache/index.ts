export {
  BlobCache,
  type BlobCacheOptions,
  CACHE_FORMAT,
  type CacheEntry,
  type CacheWriter,
  cacheError,
  isCorruptCacheEntry,
} from './blob-cache.ts';
export { BlobInfoCache, type BlobLocation, type CompressedForm } from './blob-info.ts';
export { IndexStore } from './index-store.ts';
