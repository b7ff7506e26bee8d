import type { Readable } from 'node:stream';
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
  body: Readable;
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

/**
 * Iterates the entries of an uncompressed tar stream. The caller MUST consume or resume each
 * entry's body before asking for the next one.
 */
export async function* readTar(stream: Readable, where: string): AsyncGenerator<TarEntry> {
  const extract = tar.extract();
  stream.once('error', (err) => extract.destroy(err));
  stream.pipe(extract);
  try {
    for await (const e of extract) {
      const h = e.header;
      const rawName = h.name;
      const name = normaliseEntryName(rawName);
      yield {
        rawName,
        name,
        type: typeOf(h.type),
        mode: h.mode ?? 0,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
        uname: h.uname ?? '',
        gname: h.gname ?? '',
        mtime: h.mtime ?? new Date(0),
        size: h.size ?? 0,
        linkname: h.linkname ?? '',
        devmajor: h.devmajor ?? 0,
        devminor: h.devminor ?? 0,
        pax: (h.pax as Record<string, string> | null | undefined) ?? {},
        body: e as unknown as Readable,
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
