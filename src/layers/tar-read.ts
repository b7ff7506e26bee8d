import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { ErrorCode, LadingError } from '../errors/index.ts';

export type EntryType =
  | 'file'
  | 'directory'
  | 'symlink'
  | 'link'
  | 'character-device'
  | 'block-device'
  | 'fifo'
  | 'other';

/** One tar entry with its header facts and (for files) a body stream that must be consumed. */
export interface TarEntry {
  /** Name as written in the archive. */
  rawName: string;
  /**
   * Normalised: no leading `./` or `/`, no trailing `/`, `.` segments removed; `''` for the root;
   * undefined when the name escapes the root or holds a NUL.
   */
  name: string | undefined;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: Date;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  pax: Record<string, string>;
  /**
   * Extended attributes (`SCHILY.xattr.NAME` PAX records) by NAME, as raw bytes: binary values
   * (`security.capability`) survive, which the UTF-8 strings of `pax` cannot hold.
   */
  xattrs: Record<string, Buffer>;
  /** The content (files). Stream it with {@link pipeBody}, which cannot hang on a failed archive. */
  body: Readable;
  /** The error the archive (or its source) failed with, once it has. */
  failure: () => Error | undefined;
  /** The archive, for messages (`layer 0 (sha256:…)`). */
  where: string;
}

/**
 * Streams an entry's body into `dest`. Node's `pipeline` never settles for a tar-stream body that
 * was destroyed before it was attached (the source failed, e.g. its digest did not match, while
 * the caller was still preparing the destination): then this rejects with that failure.
 */
export function pipeBody(
  e: TarEntry,
  dest: NodeJS.WritableStream & { destroy(err?: Error): unknown },
): Promise<void> {
  const body = e.body as Readable & { destroying?: boolean };
  if (body.destroyed || body.destroying) {
    const err =
      e.failure() ??
      new LadingError(ErrorCode.Archive, `the archive ended while ${JSON.stringify(e.rawName)} was read`);
    // Closed without an error of its own: nobody listens to the destination's errors.
    dest.destroy();
    return Promise.reject(err);
  }
  return pipeline(body, dest).catch((err: unknown) => {
    throw cutShort(e, err);
  });
}

/**
 * tar-stream's words for an archive that ends inside an entry's body: the tar is cut short, or
 * the entry's size field claims more than there is (a hostile one can claim 8 GiB).
 */
const TAR_STREAM_CUT = 'Unexpected end of data';

/** A body that failed because its archive ended early: an archive error, not the destination's. */
function cutShort(e: TarEntry, err: unknown): unknown {
  if (err instanceof LadingError || (err as Error | undefined)?.message !== TAR_STREAM_CUT) return err;
  return new LadingError(
    ErrorCode.Archive,
    `${e.where} ends inside ${JSON.stringify(e.rawName)} (its header announces ${e.size} bytes): the tar is cut short, or the size is wrong`,
    {},
    { cause: err },
  );
}

/**
 * Normalises an archive path. Returns undefined when it escapes (`..` above the root) or holds a
 * NUL; `''` stands for the root itself.
 */
export function normaliseEntryName(raw: string): string | undefined {
  if (raw.includes('\0')) return undefined;
  const out: string[] = [];
  for (const seg of raw.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      continue;
    }
    out.push(seg);
  }
  return out.join('/');
}

/** True when a raw name uses `..` at all (refused even if it would stay inside). */
export function hasDotDot(raw: string): boolean {
  return raw.split('/').includes('..');
}

/** A PAX `uid`/`gid` record (decimal), or undefined when absent or malformed. */
function paxNumber(v: string | undefined): number | undefined {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** A PAX `mtime` record (decimal seconds with an optional fraction; millisecond precision here). */
function paxTime(v: string | undefined): Date | undefined {
  if (v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) return undefined;
  return new Date(Math.round(Number(v) * 1000));
}

function typeOf(t: string | null | undefined): EntryType {
  switch (t) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'symlink':
      return 'symlink';
    case 'link':
      return 'link';
    case 'character-device':
      return 'character-device';
    case 'block-device':
      return 'block-device';
    case 'fifo':
      return 'fifo';
    default:
      return 'other';
  }
}

export const XATTR_PREFIX = 'SCHILY.xattr.';
const BLOCK = 512;
/** Larger PAX headers are not kept raw (tar-stream refuses headers above 4 MiB anyway). */
const MAX_RAW_PAX = 1 << 20;

/** The end of a tar header block: its size field (octal, or base-256 when the top bit is set). */
function headerSize(h: Buffer): number {
  if (h[124]! & 0x80) {
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i]!;
    return n;
  }
  const s = h
    .toString('latin1', 124, 136)
    .replace(/[\0 ]+/g, ' ')
    .trim();
  return s ? Number.parseInt(s, 8) : 0;
}

/**
 * Follows the tar framing of the bytes tar-stream is given, to keep the `SCHILY.xattr.*` PAX
 * records as raw bytes (tar-stream decodes them as UTF-8, which mangles binary values). What it
 * finds is keyed by the offset just after the entry's header block, which tar-stream reports as
 * `byteOffset`; an entry is matched only when tar-stream decoded the same xattr names.
 */
class RawXattrs {
  readonly found = new Map<number, Record<string, Buffer>>();
  #offset = 0;
  #head: Buffer[] = [];
  #headLen = 0;
  #skip = 0;
  #capture: Buffer | undefined;
  #captured = 0;
  #pending: { xattrs?: Record<string, Buffer>; size?: number } = {};

  write(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#capture) {
        const n = Math.min(this.#capture.length - this.#captured, chunk.length - i);
        chunk.copy(this.#capture, this.#captured, i, i + n);
        this.#captured += n;
        i += n;
        if (this.#captured === this.#capture.length) {
          this.#pending = parseRawPax(this.#capture);
          this.#capture = undefined;
        }
        continue;
      }
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      const n = Math.min(BLOCK - this.#headLen, chunk.length - i);
      this.#head.push(chunk.subarray(i, i + n));
      this.#headLen += n;
      i += n;
      if (this.#headLen < BLOCK) break;
      const h = this.#head.length === 1 ? this.#head[0]! : Buffer.concat(this.#head);
      this.#head = [];
      this.#headLen = 0;
      this.#header(h, this.#offset + i);
    }
  }

  /** One header block; `end` is the stream offset just after it. */
  #header(h: Buffer, end: number): void {
    if (h.every((b) => b === 0)) return;
    const size = headerSize(h);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    const flag = String.fromCharCode(h[156]!);
    if (flag === 'x') {
      if (size <= MAX_RAW_PAX) {
        this.#capture = Buffer.alloc(size);
        this.#captured = 0;
        this.#skip = pad;
        if (size === 0) this.#capture = undefined;
      } else this.#skip = size + pad;
      return;
    }
    if (flag === 'g' || flag === 'L' || flag === 'K') {
      this.#skip = size + pad;
      return;
    }
    const pending = this.#pending;
    this.#pending = {};
    if (pending.xattrs) this.found.set(end, pending.xattrs);
    // As tar-stream: a directory (also an old-style `name/` regular file) has no body.
    const nul = h.indexOf(0);
    const nameEnd = nul === -1 || nul > 100 ? 100 : nul;
    const dir = flag === '5' || ((flag === '0' || flag === '\0') && nameEnd > 0 && h[nameEnd - 1] === 0x2f);
    const body = dir ? 0 : (pending.size ?? size);
    this.#skip = body + ((BLOCK - (body % BLOCK)) % BLOCK);
  }

  /** Called after each chunk was handed on, to move the stream offset. */
  advance(n: number): void {
    this.#offset += n;
  }
}

/** The xattr records (raw) and `size` of a PAX header body (`LEN KEY=VALUE\n` records). */
function parseRawPax(buf: Buffer): { xattrs?: Record<string, Buffer>; size?: number } {
  const out: { xattrs?: Record<string, Buffer>; size?: number } = {};
  let at = 0;
  while (at < buf.length) {
    const sp = buf.indexOf(0x20, at);
    if (sp === -1) break;
    const len = Number.parseInt(buf.toString('latin1', at, sp), 10);
    if (!(len > 0) || at + len > buf.length) break;
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq === -1 || eq >= at + len) break;
    const key = buf.toString('utf8', sp + 1, eq);
    const value = buf.subarray(eq + 1, at + len - 1);
    if (key.startsWith(XATTR_PREFIX)) {
      out.xattrs ??= {};
      out.xattrs[key.slice(XATTR_PREFIX.length)] = Buffer.from(value);
    } else if (key === 'size') out.size = Number.parseInt(value.toString('latin1'), 10);
    at += len;
  }
  return out;
}

/** Raw xattrs for an entry, when the tap found the same names; else the UTF-8 strings tar-stream gave. */
function xattrsOf(
  pax: Record<string, string>,
  raw: Record<string, Buffer> | undefined,
): Record<string, Buffer> {
  const names = Object.keys(pax).filter((k) => k.startsWith(XATTR_PREFIX));
  if (!names.length) return {};
  if (
    raw &&
    names.length === Object.keys(raw).length &&
    names.every((k) => raw[k.slice(XATTR_PREFIX.length)])
  )
    return raw;
  return Object.fromEntries(names.map((k) => [k.slice(XATTR_PREFIX.length), Buffer.from(pax[k]!, 'utf8')]));
}

/**
 * Iterates the entries of an uncompressed tar stream. The caller MUST consume or resume each
 * entry's body before asking for the next one.
 */
export async function* readTar(stream: Readable, where: string): AsyncGenerator<TarEntry> {
  const extract = tar.extract();
  const tap = new RawXattrs();
  let failed: Error | undefined;
  const failure = () => failed;
  stream.once('error', (err) => {
    failed ??= err;
    extract.destroy(err);
  });
  extract.once('error', (err: Error) => {
    failed ??= err;
  });
  // Registered before the pipe, so the tap sees each chunk before tar-stream does.
  stream.on('data', (chunk: Buffer) => {
    tap.write(chunk);
    tap.advance(chunk.length);
  });
  stream.pipe(extract);
  try {
    for await (const e of extract) {
      const h = e.header;
      const rawName = h.name;
      const name = normaliseEntryName(rawName);
      const pax = (h.pax as Record<string, string> | null | undefined) ?? {};
      let xattrs: Record<string, Buffer> = {};
      if (h.pax) {
        const at = (h as { byteOffset?: number }).byteOffset;
        xattrs = xattrsOf(pax, at === undefined ? undefined : tap.found.get(at));
        if (at !== undefined) tap.found.delete(at);
      }
      yield {
        rawName,
        name,
        type: typeOf(h.type),
        mode: h.mode ?? 0,
        // PAX records override the header fields (tar-stream applies only path, linkpath, size):
        // owners above 2097151 and sub-second mtimes only fit there.
        uid: paxNumber(pax.uid) ?? h.uid ?? 0,
        gid: paxNumber(pax.gid) ?? h.gid ?? 0,
        uname: pax.uname ?? h.uname ?? '',
        gname: pax.gname ?? h.gname ?? '',
        mtime: paxTime(pax.mtime) ?? h.mtime ?? new Date(0),
        size: h.size ?? 0,
        linkname: h.linkname ?? '',
        devmajor: h.devmajor ?? 0,
        devminor: h.devminor ?? 0,
        pax,
        xattrs,
        body: e as unknown as Readable,
        failure,
        where,
      };
      // If the consumer did not read the body, skip it.
      e.resume();
    }
  } catch (err) {
    if (err instanceof LadingError) throw err;
    throw new LadingError(
      ErrorCode.Archive,
      `${where}: not a valid tar stream (${(err as Error).message})`,
      {},
      { cause: err },
    );
  }
}
