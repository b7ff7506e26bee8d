import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { constants, crc32, deflateRaw, deflateRawSync, type ZlibOptions } from 'node:zlib';

/** Made at the call: at the top, it would load node:zlib at every command's start. */
const deflateRawAsync = (block: Buffer, options: ZlibOptions): Promise<Buffer> =>
  promisify<Buffer, ZlibOptions, Buffer>(deflateRaw)(block, options);

/** Input bytes per independently compressed block. */
export const GZIP_BLOCK = 1 << 20;
/** Deflate's window: each block is primed with the 32 KiB of input before it. */
const WINDOW = 32 * 1024;
/** Samples taken from a block to judge whether it compresses at all. */
const PROBES = 4;
const PROBE_BYTES = 8 * 1024;
/** A block whose every sample shrinks by less than this is stored, not deflated. */
const INCOMPRESSIBLE = 0.985;
/** ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=3 (Unix): no name, no time, so no variation. */
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

export interface ParallelGzipOptions {
  /** zlib level 0–9 (default 6). */
  level?: number;
  /** Blocks compressed at once (default: twice the CPU count, at least 4: a core never waits). */
  jobs?: number;
}

/**
 * gzip on several threads, the way pigz does it: the input is cut into 1 MiB blocks at fixed
 * offsets, each block is deflated on zlib's thread pool with the previous 32 KiB as its dictionary
 * and ends with a sync flush (the last one with the final block), and the pieces are joined under
 * one gzip header and trailer (CRC-32 and length of the whole input). The output is one ordinary
 * gzip member that any gunzip reads, and it depends only on the input bytes and the level, never
 * on timing or thread count, so layers stay reproducible. Blocks that do not compress (samples of
 * them do not shrink) are stored as they are, as zstd does, instead of being searched for matches.
 */
export function parallelGzip(source: AsyncIterable<Uint8Array>, opts: ParallelGzipOptions = {}): Readable {
  const level = opts.level ?? 6;
  const jobs = Math.max(1, opts.jobs ?? Math.max(4, 2 * availableParallelism()));
  return Readable.from(blocks(source, level, jobs), { objectMode: false, highWaterMark: 1 << 20 });
}

/**
 * Whether a block looks like already-compressed data (samples at fixed offsets do not shrink at
 * level 1). zlib spends as long on such data as on text at any level, for nothing; stored blocks
 * cost a copy. The test depends only on the bytes, so the output stays deterministic.
 */
function incompressible(block: Buffer): boolean {
  if (block.length < PROBES * PROBE_BYTES * 2) return false;
  const step = Math.floor((block.length - PROBE_BYTES) / (PROBES - 1));
  for (let i = 0; i < PROBES; i++) {
    const sample = block.subarray(i * step, i * step + PROBE_BYTES);
    if (deflateRawSync(sample, { level: 1 }).length < sample.length * INCOMPRESSIBLE) return false;
  }
  return true;
}

async function* blocks(
  source: AsyncIterable<Uint8Array>,
  level: number,
  jobs: number,
): AsyncGenerator<Buffer> {
  yield HEADER;
  let crc = 0;
  let total = 0;
  let window: Buffer | undefined;
  const inflight: Promise<Buffer>[] = [];
  const submit = (block: Buffer, last: boolean): void => {
    crc = crc32(block, crc);
    total += block.length;
    const options: ZlibOptions = {
      level: incompressible(block) ? 0 : level,
      // Room for the whole block's output, so that it is compressed in one trip to the thread pool.
      chunkSize: GZIP_BLOCK + (64 << 10),
      finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    };
    if (window) options.dictionary = window;
    const p = deflateRawAsync(block, options);
    // Awaited in order below; a failure of a later block must not go unhandled meanwhile.
    p.catch(() => {});
    inflight.push(p);
    window =
      block.length >= WINDOW
        ? Buffer.from(block.subarray(block.length - WINDOW))
        : Buffer.concat([window ?? Buffer.alloc(0), block]).subarray(-WINDOW);
  };

  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    let c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (pendingBytes + c.length >= GZIP_BLOCK) {
      const take = GZIP_BLOCK - pendingBytes;
      pending.push(c.subarray(0, take));
      // A copy: the source may reuse its buffers once this loop moves on.
      submit(Buffer.concat(pending, GZIP_BLOCK), false);
      pending = [];
      pendingBytes = 0;
      c = c.subarray(take);
      while (inflight.length >= jobs) yield await inflight.shift()!;
    }
    if (c.length > 0) {
      pending.push(Buffer.from(c));
      pendingBytes += c.length;
    }
  }
  submit(Buffer.concat(pending, pendingBytes), true);
  while (inflight.length > 0) yield await inflight.shift()!;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(total % 2 ** 32, 4);
  yield trailer;
}
