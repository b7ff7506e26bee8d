import { type FileHandle, open } from 'node:fs/promises';
import { ErrorCode, LadingError } from '../errors/index.ts';

/** Where one member of a tar file lives. */
export interface TarMember {
  name: string;
  /** Typeflag: '0' file, '1' hardlink, '2' symlink, '5' directory, … */
  type: string;
  linkname: string;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
}

const BLOCK = 512;

function cstring(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + len ? start + len : end);
}

function octal(buf: Buffer, start: number, len: number, where: string): number {
  // GNU base-256 for large values.
  if (buf[start]! & 0x80) {
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const s = cstring(buf, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s))
    throw new LadingError(
      ErrorCode.Archive,
      `${where} is not a tar archive (a header has a bad numeric field)`,
    );
  return Number.parseInt(s, 8);
}

function paxRecords(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp === -1) break;
    const len = Number(data.toString('utf8', i, sp));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = data.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/**
 * Lists the members of a tar file with their data offsets, reading only headers (the data is
 * skipped with seeks), so members can later be streamed by range. Handles PAX and GNU long names.
 */
export async function indexTar(path: string): Promise<TarMember[]> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new LadingError(ErrorCode.NotFound, `cannot open archive ${path}: ${(err as Error).message}`, {
      path,
    });
  }
  try {
    const size = (await fh.stat()).size;
    const members: TarMember[] = [];
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Record<string, string> = {};
    while (pos + BLOCK <= size) {
      await fh.read(header, 0, BLOCK, pos);
      if (header.every((b) => b === 0)) break;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
      const stored = octal(header, 148, 8, path);
      if (stored !== sum)
        throw new LadingError(
          ErrorCode.Archive,
          `${path} is not a tar archive (bad header checksum at offset ${pos})`,
          { path },
        );
      const type = String.fromCharCode(header[156]! || 48);
      const entrySize = octal(header, 124, 12, path);
      const dataStart = pos + BLOCK;
      const next = dataStart + Math.ceil(entrySize / BLOCK) * BLOCK;
      if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
        if (entrySize > 1 << 20)
          throw new LadingError(ErrorCode.Archive, `${path}: oversized extended header at ${pos}`, { path });
        const data = Buffer.alloc(entrySize);
        await fh.read(data, 0, entrySize, dataStart);
        if (type === 'L') longName = cstring(data, 0, entrySize);
        else if (type === 'K') longLink = cstring(data, 0, entrySize);
        else if (type === 'x') pax = paxRecords(data);
        pos = next;
        continue;
      }
      const prefix =
        header.subarray(257, 263).toString('latin1') === 'ustar\u0000' ? cstring(header, 345, 155) : '';
      const base = cstring(header, 0, 100);
      const name = pax.path ?? longName ?? (prefix ? `${prefix}/${base}` : base);
      const linkname = pax.linkpath ?? longLink ?? cstring(header, 157, 100);
      const realSize = pax.size !== undefined ? Number(pax.size) : entrySize;
      members.push({ name, type, linkname, offset: dataStart, size: realSize });
      longName = undefined;
      longLink = undefined;
      pax = {};
      pos = dataStart + Math.ceil(realSize / BLOCK) * BLOCK;
      if (pos > size)
        throw new LadingError(ErrorCode.Archive, `${path} is truncated (member ${JSON.stringify(name)})`, {
          path,
        });
    }
    return members;
  } finally {
    await fh.close();
  }
}

/** Normalises a member name for lookups (`./a/b` → `a/b`). */
export function normaliseMemberName(name: string): string {
  let n = name.replace(/^\.\/+/, '').replace(/\/+$/, '');
  while (n.startsWith('./')) n = n.slice(2);
  return n;
}
