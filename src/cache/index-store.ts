import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/index.ts';
import { CACHE_FORMAT } from './blob-cache.ts';

interface Stored<T> {
  key: string;
  time: string;
  value: T;
  /** sha256 of JSON.stringify([key, value]): a torn or edited entry reads as a miss. */
  check: string;
}

function checksum(key: string, value: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify([key, value]))
    .digest('hex');
}

/**
 * Small keyed records beside the blob store (`<root>/v1/index/…`): which digest a tag had, the
 * hashes a prefetch computed. Each record is written atomically and carries its own checksum.
 */
export class IndexStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  #path(key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return join(this.root, CACHE_FORMAT, 'index', h.slice(0, 2), `${h}.json`);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const path = this.#path(key);
    let raw: string;
    try {
      raw = await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const s = JSON.parse(raw) as Stored<T>;
      if (s.key === key && s.check === checksum(key, s.value)) return s.value;
    } catch {
      // fall through: corrupt
    }
    await rm(path, { force: true });
    return undefined;
  }

  async set<T>(key: string, value: T): Promise<void> {
    const path = this.#path(key);
    await mkdir(join(path, '..'), { recursive: true });
    const s: Stored<T> = { key, time: new Date().toISOString(), value, check: checksum(key, value) };
    await writeFileAtomic(path, JSON.stringify(s));
  }

  async delete(key: string): Promise<void> {
    await rm(this.#path(key), { force: true });
  }
}
