import { createHash, type Hash } from 'node:crypto';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { type Digest, digestAlgorithm, digestMismatch } from '../digest/index.ts';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { noteBufferChurn } from '../util/index.ts';
import { type Compression, decompress, detectCompression } from './compression.ts';
import { SyncInflater, syncInflateWorks } from './inflate-sync.ts';
import type { LayerBlob } from './types.ts';

/**
 * A layer's uncompressed tar, checked against its diff_id when the layer has one: what unpack,
 * export and extract read. Each piece of the stored stream is inflated on this thread, at once,
 * and the diff_id hash is updated with the inflated block while it is still in the cache: one
 * pass, no zlib thread-pool job, no separate verifying stream. Without the synchronous zlib handle
 * (see {@link syncInflateWorks}) the zlib streams do the same work.
 */
export async function openLayer(
  layer: LayerBlob,
  what: string,
  signal?: AbortSignal,
  source?: (raw: Readable) => Readable,
): Promise<Readable> {
  const opened = await layer.open({ signal });
  const raw = source ? source(opened) : opened;
  if (!syncInflateWorks('gzip') || !syncInflateWorks('zstd'))
    return decompress(raw, { what, diffId: layer.diffId });
  const out = new InflateVerify(what, layer.diffId);
  raw.once('error', (err) => out.destroy(err));
  out.once('close', () => {
    if (!raw.readableEnded) raw.destroy();
  });
  return raw.pipe(out);
}

/**
 * Inflates (gzip, zstd or nothing, told by the first four bytes) and hashes in one synchronous
 * step per input piece. Bytes that do not inflate are still read to the end, so that the source's
 * own digest check names the cause when it is a tampered download; otherwise the decompression
 * error ends the stream. With a diff_id, the end fails (E_DIGEST_MISMATCH) instead of ending when
 * the bytes hash to something else, before the consumer sees `end`.
 */
/** Inflated bytes held for the reader beyond which inflating waits for it (2× the mark). */
const PAUSE_AT = 2 << 20;

class InflateVerify extends Transform {
  readonly #what: string;
  readonly #diffId: Digest | undefined;
  readonly #hash: Hash | undefined;
  #bytes = 0;
  #head: Buffer | undefined = Buffer.alloc(0);
  #kind: Compression | undefined;
  #inflater: SyncInflater | undefined;
  #inflateError: unknown;
  readonly #onOut = (block: Buffer): boolean => {
    this.#hash?.update(block);
    this.#bytes += block.length;
    noteBufferChurn(block.length);
    // Inflated blocks are kept by the inflater ('keep'), plain pieces are the source's: no copy.
    this.push(block);
    // Pause inflating only when far past the high-water mark: a piece that inflates hugely (a
    // zstd RLE block, gzipped zeros). Pausing at the mark itself, as push() asks, cost unpack
    // ~20% more CPU (a pause and a fresh slab for nearly every block).
    return this.readableLength < PAUSE_AT;
  };

  constructor(what: string, diffId: Digest | undefined) {
    super({ readableHighWaterMark: 1 << 20 });
    this.#what = what;
    this.#diffId = diffId;
    this.#hash = diffId ? createHash(digestAlgorithm(diffId)) : undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.#head) {
      this.#inflate(chunk, cb);
      return;
    }
    this.#head = this.#head.length ? Buffer.concat([this.#head, chunk]) : chunk;
    if (this.#head.length < 4) {
      cb();
      return;
    }
    let head: Buffer;
    try {
      head = this.#start();
    } catch (err) {
      cb(err as Error);
      return;
    }
    this.#inflate(head, cb);
  }

  /**
   * Feeds `piece`, then calls `cb`; when the reader has enough first, the rest waits until it
   * reads again (as zlib's streams do): a small piece can inflate to gigabytes.
   */
  #inflate(piece: Buffer, cb: TransformCallback): void {
    let rest: Buffer | undefined;
    try {
      rest = this.#feed(piece);
    } catch (err) {
      cb(err as Error);
      return;
    }
    if (!rest) {
      cb();
      return;
    }
    const read = this._read;
    this._read = (n: number) => {
      this._read = read;
      this.#inflate(rest, cb);
      // Transform's own: hands on a callback it kept (never this one's again: it may pause anew).
      read.call(this, n);
    };
  }

  override _flush(cb: TransformCallback): void {
    try {
      // Fewer than 4 bytes in all: too few to inflate to much.
      if (this.#head) this.#feed(this.#start());
      if (this.#inflateError !== undefined) throw this.#inflateError;
      this.#inflater?.end(this.#onOut);
      this.#check();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.#inflater?.close();
    cb(err);
  }

  /** Tells the compression from the first bytes; returns them, to be fed. */
  #start(): Buffer {
    const head = this.#head!;
    this.#head = undefined;
    this.#kind = detectCompression(head);
    if (this.#kind !== 'none') this.#inflater = new SyncInflater(this.#kind, this.#what, 'keep');
    return head;
  }

  /** Inflates `piece`; returns what is left of it when the reader has enough for now. */
  #feed(piece: Buffer): Buffer | undefined {
    if (this.#inflateError !== undefined) return undefined;
    if (!this.#inflater) {
      this.#onOut(piece);
      return undefined;
    }
    try {
      const rest = this.#inflater.write(piece, this.#onOut);
      return rest && Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength);
    } catch (err) {
      if (!(err instanceof LadingError && err.code === ErrorCode.Archive)) throw err;
      // Read on: the source's digest check, at its end, may name the real cause.
      this.#inflateError = err;
      this.#inflater.close();
    }
  }

  #check(): void {
    if (!this.#diffId || !this.#hash) return;
    const found = `${digestAlgorithm(this.#diffId)}:${this.#hash.digest('hex')}`;
    if (found !== this.#diffId)
      throw digestMismatch(
        this.#diffId,
        found,
        this.#bytes,
        `the uncompressed ${this.#what} (its diff_id in the config)`,
      );
  }
}
