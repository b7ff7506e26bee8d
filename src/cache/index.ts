export { BlobCache, type BlobCacheOptions, CACHE_FORMAT, type CacheEntry, cacheError } from './blob-cache.ts';
export { IndexStore } from './index-store.ts';
