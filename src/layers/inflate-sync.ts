import * as zlib from 'node:zlib';
import { ErrorCode, LadingError } from '../errors/index.ts';
import { type Compression, detectCompression } from './compression.ts';

/** Output block of the synchronous inflaters: reused for the whole layer. */
const OUT_BLOCK = 256 * 1024;
/** Slabs for kept blocks (see the constructor), and the least room worth writing into. */
const KEEP_SLAB = 512 * 1024;
const KEEP_MIN_ROOM = 16 * 1024;
/**
 * The self-test's output block. With a 256 KiB one (and 768 KiB of data to fill it three times)
 * the test took ~25 ms of each prefetch's start, most of it compressing the data with zstd.
 */
const SELF_TEST_BLOCK = 4096;

/**
 * What a zlib or zstd stream object keeps inside: Node's native handle, whose `writeSync` runs the
 * decompressor on this thread, and the two-number state it reports through. Not a public API:
 * {@link syncInflateWorks} checks it once, and callers fall back to the zlib streams without it.
 */
interface NativeHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  onerror: (message: string, errno: number, code?: string) => void;
}
interface HandleOwner {
  _handle?: NativeHandle;
  _writeState?: Uint32Array;
  _defaultFlushFlag?: number;
  _finishFlushFlag?: number;
  close(): void;
}

/**
 * A decompressor driven synchronously: each input piece is inflated at once into one reused
 * output buffer, handed to `onOut` block by block (valid only during the call). No thread-pool
 * job, no allocation per piece. gzip (multi-member too, as zlib's stream does) or zstd.
 */
export class SyncInflater {
  readonly kind: Exclude<Compression, 'none'>;
  readonly #owner: HandleOwner;
  readonly #handle: NativeHandle;
  readonly #state: Uint32Array;
  #out: Buffer;
  /** Where the next block goes in `#out` (always 0 unless the blocks are kept: see the constructor). */
  #outOff = 0;
  /** Blocks are handed on for keeps: never overwritten, a new slab once one is nearly full. */
  readonly #keep: boolean;
  readonly #flush: number;
  readonly #finish: number;
  readonly #what: string;
  #error: Error | undefined;
  #closed = false;

  /**
   * `out`: the reused output block (default: one of 256 KiB), or `'keep'`: each block handed to
   * `onOut` stays valid for good (slices of 512 KiB slabs, as zlib's stream hands them out, with
   * no copy), for a consumer that holds on to them.
   */
  constructor(kind: Exclude<Compression, 'none'>, what = `a ${kind} layer`, out?: Buffer | 'keep') {
    this.kind = kind;
    this.#what = what;
    const owner = (kind === 'gzip'
      ? zlib.createGunzip({ chunkSize: OUT_BLOCK })
      : zlib.createZstdDecompress({ chunkSize: OUT_BLOCK })) as unknown as HandleOwner;
    const handle = owner._handle;
    const state = owner._writeState;
    if (!handle || typeof handle.writeSync !== 'function' || !(state instanceof Uint32Array)) {
      owner.close();
      throw new LadingError(ErrorCode.Internal, `this Node.js has no synchronous ${kind} handle`);
    }
    this.#owner = owner;
    this.#handle = handle;
    this.#state = state;
    this.#flush = owner._defaultFlushFlag ?? 0;
    this.#finish = owner._finishFlushFlag ?? (kind === 'gzip' ? zlib.constants.Z_FINISH : 2);
    this.#keep = out === 'keep';
    this.#out = out instanceof Buffer ? out : Buffer.allocUnsafe(this.#keep ? KEEP_SLAB : OUT_BLOCK);
    // Called synchronously from writeSync when the data is bad.
    handle.onerror = (message: string, errno: number, code?: string) => {
      this.#error = Object.assign(new Error(message), { errno, code });
    };
  }

  /**
   * Inflates `input`; every output block goes to `onOut` before this returns. When `onOut`
   * returns false (its reader has enough), this stops after that block and returns what is left
   * of `input` (maybe empty: the inflater may still hold output), to be written again later: a
   * few bytes can inflate to gigabytes (a zstd RLE block is 4 bytes for 128 KiB).
   */
  write(input: Uint8Array, onOut: (out: Buffer) => unknown): Uint8Array | undefined {
    return this.#run(input, this.#flush, onOut, true);
  }

  /** Ends the stream (a truncated one fails here) and frees the native state. */
  end(onOut: (out: Buffer) => void): void {
    try {
      this.#run(new Uint8Array(0), this.#finish, onOut, false);
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#owner.close();
  }

  #run(
    input: Uint8Array,
    flush: number,
    onOut: (out: Buffer) => unknown,
    canPause: boolean,
  ): Uint8Array | undefined {
    if (this.#closed) throw new LadingError(ErrorCode.Internal, 'inflater used after its end');
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      const out = this.#out;
      const outOff = this.#outOff;
      const room = out.length - outOff;
      this.#handle.writeSync(flush, input, inOff, inLen, out, outOff, room);
      if (this.#error) {
        const err = this.#error;
        this.close();
        throw new LadingError(
          ErrorCode.Archive,
          `cannot decompress ${this.#what}: ${err.message} (damaged, or not ${this.kind})`,
          {},
          { cause: err },
        );
      }
      const outLeft = this.#state[0]!;
      const inLeft = this.#state[1]!;
      const produced = room - outLeft;
      const more = produced > 0 ? onOut(out.subarray(outOff, outOff + produced)) !== false : true;
      if (this.#keep) this.#advance(produced);
      inOff += inLen - inLeft;
      inLen = inLeft;
      // A full output block may leave more to come; otherwise this input is done (bytes after the
      // end of the stream are ignored, as zlib's stream ignores them).
      if (outLeft !== 0) return undefined;
      if (!more && canPause) return input.subarray(inOff, inOff + inLen);
    }
  }

  /** With kept blocks: the next one goes after this one, or into a new slab when little room is left. */
  #advance(produced: number): void {
    this.#outOff += produced;
    if (this.#out.length - this.#outOff < KEEP_MIN_ROOM) {
      this.#out = Buffer.allocUnsafe(KEEP_SLAB);
      this.#outOff = 0;
    }
  }
}

const works = new Map<string, boolean>();

/**
 * Whether {@link SyncInflater} works for `kind` on this Node.js: checked once, on a small stream
 * compressed by zlib itself (several output blocks, a bad stream that must fail).
 */
export function syncInflateWorks(kind: Exclude<Compression, 'none'>): boolean {
  let ok = works.get(kind);
  if (ok !== undefined) return ok;
  try {
    // Small and repetitive (this runs before the first layer of every command that inflates), but
    // more than SELF_TEST_BLOCK three times over: the inflater fills its output block several times.
    const data = Buffer.alloc(
      3 * SELF_TEST_BLOCK + 123,
      'lading checks its synchronous inflater, 0123456789\n',
    );
    const packed =
      kind === 'gzip'
        ? zlib.gzipSync(data, { level: 1 })
        : zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } });
    let at = 0;
    let same = true;
    const compare = (b: Buffer): void => {
      same &&= b.equals(data.subarray(at, at + b.length));
      at += b.length;
    };
    const inf = new SyncInflater(kind, 'the self-test', Buffer.allocUnsafe(SELF_TEST_BLOCK));
    const half = packed.length >> 1;
    inf.write(packed.subarray(0, half), compare);
    inf.write(packed.subarray(half), compare);
    inf.end(compare);
    let failed = false;
    const bad = new SyncInflater(kind, 'the self-test');
    try {
      bad.write(packed.subarray(0, half), () => {});
      bad.end(() => {});
    } catch {
      failed = true;
    }
    ok = failed && same && at === data.length;
  } catch {
    ok = false;
  }
  works.set(kind, ok);
  return ok;
}

/**
 * A layer's uncompressed bytes from a synchronous reader of its stored bytes: gzip, zstd or
 * nothing, told by the first four bytes, inflated piece by piece into `onOut` (each piece valid
 * only during the call). Bytes that do not inflate are still read to the end, so that the reader's
 * digest check names the cause (a tampered or damaged download) when it is that; otherwise the
 * decompression error is thrown. Needs {@link syncInflateWorks}.
 */
export async function inflatePieces(
  read: (onPiece: (piece: Buffer) => void) => Promise<void>,
  onOut: (out: Buffer) => void,
  what: string,
): Promise<void> {
  let kind: Compression | undefined;
  let head = Buffer.alloc(0);
  let inflater: SyncInflater | undefined;
  let inflateError: unknown;
  const feed = (piece: Buffer): void => {
    if (inflateError !== undefined) return;
    try {
      // Never paused: each piece is consumed during the call (onOut's value is not a request).
      if (inflater) inflater.write(piece, (out) => void onOut(out));
      else onOut(piece);
    } catch (err) {
      if (!(err instanceof LadingError && err.code === ErrorCode.Archive)) throw err;
      inflateError = err;
    }
  };
  const start = (): void => {
    kind = detectCompression(head);
    if (kind !== 'none') inflater = new SyncInflater(kind, what);
    feed(head);
  };
  try {
    await read((piece) => {
      if (kind !== undefined) {
        feed(piece);
        return;
      }
      head = Buffer.concat([head, piece]);
      if (head.length >= 4) start();
    });
    if (kind === undefined && head.length) start();
    if (inflateError !== undefined) throw inflateError;
    inflater?.end(onOut);
  } finally {
    inflater?.close();
  }
}
