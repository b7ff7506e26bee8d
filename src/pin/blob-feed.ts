import type { Readable } from 'node:stream';
import type { BlobCache } from '../cache/index.ts';
import type { Descriptor } from '../image/index.ts';
import { decompress, decompressRing } from '../layers/index.ts';
import type { RegistrySource } from '../transports/index.ts';

type State =
  | { kind: 'queued' }
  | { kind: 'fetching'; done: Promise<void> }
  | { kind: 'cached' }
  /** Streamed straight to a consumer, teed into the cache: `landed` settles when that write has. */
  | { kind: 'streamed'; landed: Promise<void> };

/**
 * Feeds an image's blobs to the hashes that need them, fetching each once. The blob a consumer
 * asks for first streams straight from the registry (teed into the cache), so hashing starts with
 * the first bytes; the others download into the cache ahead of their turn, `ahead` at a time, in
 * the order given. A blob asked for while it downloads is read from the cache once it is there.
 */
export class BlobFeed {
  readonly #source: RegistrySource;
  readonly #cache: BlobCache;
  readonly #signal: AbortSignal | undefined;
  readonly #states = new Map<string, State>();
  readonly #queue: Descriptor[] = [];
  #running = 0;
  readonly #ahead: number;

  constructor(source: RegistrySource, cache: BlobCache, opts: { ahead?: number; signal?: AbortSignal } = {}) {
    this.#source = source;
    this.#cache = cache;
    this.#signal = opts.signal;
    this.#ahead = Math.max(1, opts.ahead ?? 3);
  }

  /**
   * Plans the blobs in the order they will be asked for. Those already cached are marked so; the
   * first missing one is left for its consumer to stream, the rest start downloading.
   */
  async plan(blobs: Descriptor[]): Promise<void> {
    let first = true;
    for (const d of blobs) {
      if (this.#states.has(d.digest)) continue;
      if (await this.#cache.has(d.digest, d.size)) {
        this.#states.set(d.digest, { kind: 'cached' });
        continue;
      }
      this.#states.set(d.digest, { kind: 'queued' });
      if (first) first = false;
      else this.#queue.push(d);
    }
    this.#pump();
  }

  #pump(): void {
    while (this.#running < this.#ahead && this.#queue.length) {
      const d = this.#queue.shift()!;
      if (this.#states.get(d.digest)?.kind !== 'queued') continue;
      this.#running++;
      this.#fetch(d).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  /** Downloads a queued blob into the cache; a failure leaves it queued for its consumer to fetch. */
  #fetch(d: Descriptor): Promise<void> {
    const done = this.#source.ensureCached(d, this.#signal).then(
      () => {
        this.#states.set(d.digest, { kind: 'cached' });
      },
      () => {
        // Whoever asks for it next fetches it again (and sees the error if it persists).
        this.#states.set(d.digest, { kind: 'queued' });
      },
    );
    this.#states.set(d.digest, { kind: 'fetching', done });
    return done;
  }

  /** The blob's bytes, verified: from the cache, or streamed from the registry (and cached). */
  async #compressed(d: Descriptor): Promise<{ cached: AsyncIterable<Buffer> } | { stream: Readable }> {
    let state = this.#states.get(d.digest) ?? { kind: 'queued' };
    if (state.kind === 'fetching') {
      await state.done;
      state = this.#states.get(d.digest)!;
    }
    if (state.kind === 'streamed') {
      // Asked for again (a second pass): once its tee has landed, the cache has it.
      await state.landed;
      state = (await this.#cache.has(d.digest, d.size)) ? { kind: 'cached' } : { kind: 'queued' };
    }
    if (state.kind === 'cached' && (await this.#cache.has(d.digest, d.size))) {
      // Chunks that own their memory: the streams and lists downstream keep them.
      return { cached: this.#cache.copies(d.digest, d.size) };
    }
    // The state changes before the first await, so nobody else starts a download meanwhile.
    const opened = this.#source.blob(d, { signal: this.#signal });
    const landed = opened.then(
      () => this.#cache.settled(d.digest),
      () => {},
    );
    this.#states.set(d.digest, { kind: 'streamed', landed });
    return { stream: await opened };
  }

  /** A layer's uncompressed bytes (gzip, zstd or plain, told by its first bytes). */
  async openLayer(d: Descriptor): Promise<Readable> {
    const c = await this.#compressed(d);
    return 'stream' in c ? decompress(c.stream) : decompressRing(c.cached);
  }

  /** A blob's compressed bytes, as they are stored. */
  async openBlob(d: Descriptor): Promise<AsyncIterable<Buffer>> {
    const c = await this.#compressed(d);
    return 'stream' in c ? c.stream : c.cached;
  }

  /** Waits until every planned blob is in the cache (fetching what nobody streamed). */
  async all(blobs: Descriptor[]): Promise<void> {
    for (const d of blobs) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const state = this.#states.get(d.digest) ?? { kind: 'queued' };
        if (state.kind === 'fetching') await state.done;
        else if (state.kind === 'streamed') await state.landed;
        else if (state.kind === 'queued') await this.#fetch(d);
        if (await this.#cache.has(d.digest, d.size)) break;
        // A stream stopped early, or a download failed: once more through the feed, then its error.
        this.#states.set(d.digest, { kind: 'queued' });
        if (attempt === 1) await this.#source.ensureCached(d, this.#signal);
      }
    }
  }
}
