import { closeSync, openSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';

/**
 * A new file (`wx`: created here, never through a symlink or over an existing name) written with
 * `writeSync` as each piece arrives. A layer engine inflates on this thread anyway: a synchronous
 * write costs less than a thread-pool round trip per piece, and each piece is free for reuse as
 * soon as it is written (no pile of Buffers waiting for the thread pool). The file is opened when
 * this is made, so a bad name fails here, and it is closed when the stream ends or fails.
 */
export class FileSink extends Writable {
  #fd: number | undefined;

  constructor(path: string, mode: number) {
    super({ highWaterMark: 1 << 20 });
    this.#fd = openSync(path, 'wx', mode);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      this.#writeAll(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    try {
      for (const c of chunks) this.#writeAll(c.chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    try {
      this.#close();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    try {
      this.#close();
    } catch {
      // The stream's own error (or none) is what the caller needs.
    }
    cb(err);
  }

  #writeAll(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) off += writeSync(this.#fd!, chunk, off, chunk.length - off);
  }

  #close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }
}
